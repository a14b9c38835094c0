"""Study (c): quantization formats (BF16, FP8, W8A8-INT8, W4A16) x GPUs (RTX A6000, A100, H100) x tensor-parallel
degree x batch for Llama-3.1-8B/70B/405B serving: which format is fastest and cheapest per token.

    hwsim sweep studies/quant_formats.py --report        (or: python3 -m studies.quant_formats)

Each point is one serving request per sequence (phase `serve`: a 512-token prompt, 256 generated tokens; latency =
TTFT + 256 x TPOT) on a tensor-parallel group of an 8-GPU server, simulated by the discrete-event engine with the
fused (vLLM-style) stack. "Synchronous" serving is batch 1; "asynchronous" serving takes the batch and TP degree
with the lowest $/Mtoken that fits. Compared with Kurtic et al., "Give Me BF16 or Give Me Death" (arXiv 2411.02355,
ACL'25): W4A16 is the most cost-efficient for synchronous serving and for asynchronous serving on mid-tier GPUs;
W8A8 (INT8, or FP8 where supported) wins asynchronous continuous batching of mid/large models on high-end GPUs.
Prices: the H100's cloud price, the A6000's list price over 3 years, the A100 at manufacturing cost (the preset has
no price): formats are compared within one GPU, where the price cancels.
"""
from sim.dse import Study

SYSTEMS = {"a6000-x8-pcie": "A6000 (mid-tier)", "dgx-a100": "A100", "dgx-h100": "H100"}
FORMATS = {"none": "BF16", "fp8": "FP8", "w8a8": "W8A8-INT8", "w4a16": "W4A16"}
W8A8 = ("fp8", "w8a8")


def _paper(mode, system, model):
    """The format class the paper finds cheapest, or None where it makes no claim."""
    if mode == "sync":
        return "w4a16"
    if system == "a6000-x8-pcie":
        return "w4a16"
    if model in ("llama-3.1-70b", "llama-3.1-405b"):
        return "w8a8"
    return None


def findings(df):
    ok = df[(df["status"] == "ok") & df["feasible"]]
    lines = ["cheapest format per token ($/Mtoken; sync = batch 1 at its best TP degree, async = best batch and TP):",
             f"  {'model':<15} {'GPU':<17} {'mode':<5} {'hwsim best':<10} {'paper':<10} result"]
    hits = total = 0
    misses = []
    for model in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"):
        for system, gpu in SYSTEMS.items():
            cell = ok[(ok["model"] == model) & (ok["system"] == system)]
            for mode in ("sync", "async"):
                part = cell[cell["batch"] == 1] if mode == "sync" else cell
                if part.empty:
                    lines.append(f"  {model:<15} {gpu:<17} {mode:<5} {'(none fits)':<10}")
                    continue
                best = part.groupby("quant")["usd_per_mtoken"].min()
                winner = best.idxmin()
                expect = _paper(mode, system, model)
                if expect is None:
                    lines.append(f"  {model:<15} {gpu:<17} {mode:<5} {FORMATS[winner]:<10} {'-':<10} (no claim)")
                    continue
                total += 1
                same = winner == expect or (expect == "w8a8" and winner in W8A8)
                hits += same
                want = [q for q in best.index if q == expect or (expect == "w8a8" and q in W8A8)]
                gap = (best[want].min() / best[winner] - 1) if want else float("nan")
                verdict = "REPRODUCED" if same else f"NOT REPRODUCED ({FORMATS[expect]} costs {gap:+.{1 if abs(gap) >= 0.1 else 2}%} more)"
                lines.append(f"  {model:<15} {gpu:<17} {mode:<5} {FORMATS[winner]:<10} {FORMATS[expect]:<10} {verdict}")
                if not same:
                    misses.append(f"{model} {gpu} {mode}")
                    for q in (winner, want[0]) if want else (winner,):
                        r = part[part["quant"] == q].loc[part[part["quant"] == q]["usd_per_mtoken"].idxmin()]
                        lines.append(f"      {FORMATS[q]:<10} {r['mapping']} batch {int(r['batch'])}: TTFT "
                                     f"{r['ttft_s'] * 1e3:.0f} ms + 256 x TPOT {r['tpot_s'] * 1e3:.1f} ms")
    fastest = []
    for system, gpu in SYSTEMS.items():
        sync = ok[(ok["system"] == system) & (ok["batch"] == 1)]
        if len(sync):
            per = sync.groupby(["model", "quant"])["latency_s"].min().unstack()
            wins = per.idxmin(axis=1)
            fastest.append(f"{gpu}: " + ", ".join(f"{m.split('-')[-1]} {FORMATS[q]}" for m, q in wins.items()))
    lines.append("fastest synchronous request (batch 1) per model: " + "; ".join(fastest))
    lines.append(f"paper's cheapest-format claims: {hits} of {total} cells REPRODUCED"
                 + (f"; NOT REPRODUCED: {', '.join(misses)}" if misses else ""))
    return "\n".join(lines)


study = Study(
    name="quant-formats",
    description="BF16 / FP8 / W8A8 / W4A16 x A6000 / A100 / H100 servers x TP x batch, Llama-3.1 8B/70B/405B serving",
    axes={"model": ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"], "system": list(SYSTEMS),
          "mapping": ["tp:1", "tp:2", "tp:4", "tp:8"], "quant": list(FORMATS), "phase": ["serve"],
          "profile": ["fused"], "batch": [1, 8, 32, 128, 256], "seq_len": [512], "output_len": [256]},
    constraints=["fits"],
    objectives={"latency_s": "min", "usd_per_mtoken": "min"},
    findings=findings)


if __name__ == "__main__":
    import sys

    from sim.cli import main
    sys.exit(main(["sweep", __file__, "--report", *sys.argv[1:]]))
