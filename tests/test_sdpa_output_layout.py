"""The fused SDPA kernels return their output in the query's memory layout (torch's `alloc_with_matching_layout`;
flash's `empty_like` of the transposed query). Hugging Face's query is a view of its [b, s, h, d] projection, so
`attn.transpose(1, 2).contiguous()` after SDPA copies nothing on the GPU: the trace must not record a copy there.
The math path returns a contiguous output, and there the copy is real."""
import torch
import torch.nn.functional as F

from workloads import trace_module


class HFStyleAttention(torch.nn.Module):
    def __init__(self, hidden=64, heads=4, kv_heads=4):
        super().__init__()
        self.h, self.hk, self.d = heads, kv_heads, hidden // heads
        self.q = torch.nn.Linear(hidden, hidden, bias=False)
        self.k = torch.nn.Linear(hidden, kv_heads * self.d, bias=False)
        self.v = torch.nn.Linear(hidden, kv_heads * self.d, bias=False)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.h, self.d).transpose(1, 2)
        k = self.k(x).view(b, s, self.hk, self.d).transpose(1, 2)
        v = self.v(x).view(b, s, self.hk, self.d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return out.transpose(1, 2).contiguous().reshape(b, s, -1)


def _copies(graph):
    return [k.aten for op in graph.ops for k in op.kernels if k.aten in ("clone", "copy_", "_to_copy")]


def test_fused_attention_output_needs_no_copy():
    with torch.device("meta"):
        m, x = HFStyleAttention().to(torch.bfloat16), torch.empty(2, 16, 64, dtype=torch.bfloat16)
    g = trace_module(m, x)
    assert any(op.kind == "attention" for op in g.ops)
    assert _copies(g) == []


def test_math_path_output_is_copied():
    # fp64, which no fused kernel takes: torch's math path, whose output is contiguous
    with torch.device("meta"):
        m = HFStyleAttention().to(torch.float64)
        x = torch.empty(2, 16, 64, dtype=torch.float64)
    g = trace_module(m, x)
    assert not any(op.kind == "attention" for op in g.ops)
    assert "clone" in _copies(g)
