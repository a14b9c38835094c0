"""mllm-NPU / llm.npu (arXiv 2407.05858, ASPLOS'25) reproduction attempt: prefill speed on a Snapdragon 8 Gen 3.

The model (mapping/mllm_npu.py, hw_models/hexagon.py): 256-token chunks; per layer an NPU graph for the
Q/K/V linears, CPU float attention, an NPU graph for O + FFN; shadow outlier MatMuls on the CPU in the 15%
of layers whose outliers are kept; the subgraphs run as a task graph (sim/hetero.py) in order or out of
order. What it is calibrated to, and what it then predicts:
  - NPU graph cost: fixed cost and weight-load rate fitted to all six NPU rows of Table 3; INT8 rate at
    prefill-sized M from section 3.4 ("with a prompt length of 256 ... NPU execution takes 315 ms").
  - CPU: the phone-CPU preset's model scaled to section 3.4's "about twice that of the CPU" (157.5 ms).
  - Predicted, not fitted: the other prompt lengths (Fig. 14, Fig. 19 at 512, Table 5's 1,451-1,672-token
    LongBench prompts), the other four models, and the out-of-order gain. The 256-token Qwen row is
    not a prediction (both busy times are pinned there).
A second NPU column uses Table 3 alone (INT8 rate = the 73 TOPS peak, so the NPU stays weight-load bound).

usage: python3 -m studies.mllm_npu
"""
from __future__ import annotations

import sys

from hw_models import load_device
from hw_models.hexagon import table3_points
from hw_models.hexagon import npu_engine
from mapping.mllm_npu import calibrated, layer_ops
from sim.mllm_npu import prefill

LONGBENCH = 1561                       # Table 5: 2wiki-Multi-doc QA prompts of 1,451-1,672 tokens (midpoint)
TABLE5_PREFILL_S = {"qwen1.5-1.8b": 1.49, "gemma-2b": 1.68, "phi-2": 2.79, "llama-2-7b": 4.62, "mistral-7b": 4.61}
QWEN_PAPER = {512: (395, 569, "Fig. 19"), 575: (None, 575 / 0.90, "Table 5 DroidTask 505-645 tok: 0.90 s ="),
              741: (None, 741 / 1.16, "Table 5 DroidTask 656-827 tok: 1.16 s ="),
              1024: (None, 1000, "Fig. 14 / abstract: more than"),
              LONGBENCH: (None, LONGBENCH / 1.49, "Table 5 LongBench: 1.49 s =")}
GEMMA_FIG18 = {64: 148, 256: 322, 1024: 604}            # Fig. 18(a): Gemma-2B prefill tokens/s, K70 Pro
# Fig. 19 bar labels (prompt 512, tok/s) without and with OOE, as extracted from the figure; their ratios
# (+18%, +44%, +40%) match the text's "reduces prefill latency by 18%-44%"
FIG19 = {"gemma-2b": (355, 420), "qwen1.5-1.8b": (395, 569), "llama-2-7b": (133, 186)}
FIG16 = {0.0: 156, 0.8: 544, 1.0: 596}   # Qwen1.5-1.8B tok/s by outlier pruning rate (prompt not stated)
THIRD_PARTY = 564    # HeteroInfer (SOSP'25) measured llm.npu at 564 tok/s prefill on a 1.8B model (8 Gen 3)


def calibration() -> None:
    costs = calibrated()
    npu = costs.npu
    print("Calibration (Hexagon NPU, hw_models/hexagon.py):")
    print(f"  Table 3 fit: t = {npu.t_graph_s * 1e3:.3f} ms per graph + K*N bytes at "
          f"{npu.weight_rate / 1e9:.2f} GB/s (weight-load bound at M = 32-64)")
    for m, k, n, t in table3_points(load_device("snapdragon-8gen3")):
        print(f"    {m:3d}x{k}x{n:<6d} model {npu.table3_s(m, k, n) * 1e3:4.2f} ms   Table 3 {t * 1e3:.1f} ms")
    print(f"  INT8 rate from section 3.4 (315 ms NPU, 256-token Qwen1.5-1.8B): {npu.int8_rate / 1e12:.2f} TOPS "
          f"({npu.int8_rate / 73e12:.1%} of the 73 TOPS listed); CPU model x{costs.cpu_scale:.2f} to its 157.5 ms")


def qwen_sweep() -> list:
    print("\nQwen1.5-1.8B prefill on the Redmi K70 Pro (tokens/s)")
    print(f"{'prompt':>6s} {'in order':>9s} {'out of order':>13s} {'NPU s':>6s} {'CPU s':>6s} "
          f"{'NPU-bound':>9s} {'T3-only NPU':>12s}   paper")
    gaps = []
    for prompt in (64, 256, 512, 575, 741, 1024, LONGBENCH):
        seq, ooe = prefill("qwen1.5-1.8b", prompt, "in_order"), prefill("qwen1.5-1.8b", prompt)
        peak = prefill("qwen1.5-1.8b", prompt, npu_rate="peak")
        paper = QWEN_PAPER.get(prompt)
        note = ""
        if paper:
            note = f"{paper[2]} {paper[1]:.0f}" + (f" (no OOE {paper[0]})" if paper[0] else "")
            gaps.append((prompt, ooe["tokens_per_s"] / paper[1]))
        elif prompt == 256:
            note = "(calibration point)"
        print(f"{prompt:6d} {seq['tokens_per_s']:9.0f} {ooe['tokens_per_s']:13.0f} {ooe['npu_s']:6.2f} "
              f"{ooe['cpu_s']:6.2f} {prompt / ooe['npu_s']:9.0f} {peak['tokens_per_s']:12.0f}   {note}")
    return gaps


def other_models() -> list:
    print(f"\nTable 5 LongBench 2wiki prompts (~{LONGBENCH} tokens), out of order: prefill seconds")
    print(f"{'model':14s} {'model s':>8s} {'tok/s':>6s} {'paper s':>8s} {'paper tok/s':>12s} {'ratio':>6s} {'bound':>5s} "
          f"{'INT8 GB':>8s}")
    gaps, cap = [], npu_engine(load_device("snapdragon-8gen3")).extra["addressable_gb"]
    for model, paper_s in TABLE5_PREFILL_S.items():
        r = prefill(model, LONGBENCH)
        bound = "CPU" if r["cpu_s"] > r["npu_s"] else "NPU"
        gaps.append((model, paper_s / r["latency_s"]))
        print(f"{model:14s} {r['latency_s']:8.2f} {r['tokens_per_s']:6.0f} {paper_s:8.2f} {LONGBENCH / paper_s:12.0f} "
              f"{paper_s / r['latency_s']:6.2f} {bound:>5s} {npu_weights_gb(model):8.1f}")
    print(f"(The NPU addresses about {cap:.0f} GB; the paper runs FFNs first on the NPU when the weights do not fit. "
          "The model puts every linear on the NPU.)")
    print("Gemma-2B by prompt (Fig. 18a, tokens/s): " + ", ".join(
        f"{p}: {prefill('gemma-2b', p)['tokens_per_s']:.0f} vs {v}" for p, v in GEMMA_FIG18.items()))
    return gaps


def npu_weights_gb(model: str) -> float:
    ops = layer_ops(model, 256)
    per_layer = sum(op.reads.get("weight", 0) for op in ops["qkv"] + ops["ffn"] if op.kind == "matmul")
    return per_layer * len(ops["layers"]) / 1e9


def ablation() -> None:
    print("\nFig. 19 ablation at prompt 512 (tokens/s): in order (Naive+Chunk+Outlier) -> out of order (+OOE)")
    for model, (paper_seq, paper_ooe) in FIG19.items():
        seq, ooe = prefill(model, 512, "in_order"), prefill(model, 512)
        print(f"  {model:14s} model {seq['tokens_per_s']:4.0f} -> {ooe['tokens_per_s']:4.0f} "
              f"(+{ooe['tokens_per_s'] / seq['tokens_per_s'] - 1:.0%})   paper {paper_seq} -> {paper_ooe} "
              f"(+{paper_ooe / paper_seq - 1:.0%})")
    print("Fig. 16 outlier pruning, Qwen1.5-1.8B (model at prompt 512; the paper does not state its prompt): " +
          ", ".join(f"{p:.0%}: {prefill('qwen1.5-1.8b', 512, prune=p)['tokens_per_s']:.0f} vs {v}"
                    for p, v in FIG16.items()))
    print("  (the model's shadow MatMuls are small CPU tasks that out-of-order hides; the paper measured the "
          "CPU-NPU sync at 29.7% of latency without pruning, a cost this model does not have)")


def main() -> int:
    calibration()
    qwen = qwen_sweep()
    models = other_models()
    ablation()
    print(f"\n(An independent measurement, HeteroInfer SOSP'25: llm.npu at {THIRD_PARTY} tokens/s on a 1.8B model.)")
    worst = min(g for _, g in qwen)
    if worst < 0.85:
        print("NOT REPRODUCED: Qwen1.5-1.8B out of order reaches " + ", ".join(
            f"{g:.2f}x the paper at prompt {p}" for p, g in qwen) + "; Table 5's prefill is faster than the "
            "model by " + ", ".join(f"{1 / g:.1f}x ({m})" for m, g in models) + ".")
        long = prefill("qwen1.5-1.8b", LONGBENCH)
        print(f"The paper's own figures disagree: at section 3.4's NPU time the {long['chunks']} chunks of a {LONGBENCH}-token "
              f"prompt keep the NPU alone busy {long['npu_s']:.2f} s, {long['npu_s'] / 1.49:.1f}x Table 5's whole 1.49 s prefill.")
        print(f"At {LONGBENCH} tokens the CPU (attention, {long['cpu_s']:.1f} s) would have to run "
              f"{long['cpu_s'] / long['npu_s']:.1f}x faster than section 3.4 implies just to hide behind the NPU.")
        print("Why: with the NPU pinned to section 3.4 (315 ms per 256-token chunk) the NPU alone caps Qwen at "
              "~810 tokens/s, and CPU float attention grows with the context, so long prompts turn CPU-bound "
              "and the rate falls with prompt length where the paper's rises. Table 3 alone (weight-load "
              "bound NPU) would lift the NPU cap, not the CPU one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
