"""The request traces Lamina v2 evaluates on (arXiv 2405.01814 v2, Table 4), reduced to what a saturated
decode server sees: the KV-cache context a batch slot holds, averaged over decode steps.

A slot serving a request of prompt lp and output lg holds lp + j tokens at its j-th decode step, so over
the steps of all requests the mean context is

    C = (E[lp * lg] + E[lg * (lg + 1) / 2]) / E[lg]

(long outputs occupy a slot for more steps, so they weigh more than in the plain mean lp + lg/2). Decode
attention time is linear in the context, so a batch of B slots streams B * C tokens of KV per layer, and
the number of slots that fit is the KV memory over C tokens each.

The moments were computed here (`slot_context` below applied to every request of each file); the means
match Table 4 to the printed digit, which confirms these are the paper's traces:
- Azure-Conv / Azure-Code: github.com/Azure/AzurePublicDataset @ b469a11, data/AzureLLMInferenceTrace_conv.csv
  (19,366 requests) and data/AzureLLMInferenceTrace_code.csv (8,819), columns ContextTokens, GeneratedTokens.
- Kimi-Conv: github.com/kvcache-ai/Mooncake @ 3b5a594, FAST25-release/traces/conversation_trace.jsonl
  (12,031 requests), fields input_length, output_length.
- Kimi-TA: the same repository's toolagent_trace.jsonl (23,608 requests) is over the size this workspace
  can read, so only Table 4's means are used (E[lp * lg] = lp * lg, E[lg^2] = lg^2: no spread).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TraceStats:
    name: str
    requests: int
    prompt_mean: float          # E[lp]  (Table 4's lp)
    output_mean: float          # E[lg]  (Table 4's lg)
    prompt_output_mean: float   # E[lp * lg]
    output_square_mean: float   # E[lg^2]
    source: str

    @property
    def slot_context(self) -> float:
        """Mean KV tokens a decode slot holds (see the module docstring)."""
        return (self.prompt_output_mean + (self.output_square_mean + self.output_mean) / 2) / self.output_mean


def slot_context(prompts, outputs) -> float:
    """The same mean from per-request lengths (how the table below was computed)."""
    steps = sum(outputs)
    return sum(p * g + g * (g + 1) / 2 for p, g in zip(prompts, outputs)) / steps


TRACES = (
    TraceStats("Azure-Conv", 19366, 1154.7, 211.1, 223497.3, 71099.6, "AzurePublicDataset conv, computed here"),
    TraceStats("Azure-Code", 8819, 2047.8, 27.9, 57235.3, 4360.5, "AzurePublicDataset code, computed here"),
    TraceStats("Kimi-Conv", 12031, 12035.1, 342.6, 4407259.9, 179841.7, "Mooncake conversation, computed here"),
    TraceStats("Kimi-TA", 23608, 8560.0, 182.1, 8560.0 * 182.1, 182.1 ** 2, "Lamina Table 4 means only"),
)
