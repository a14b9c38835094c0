"""Study (d): a BitMoD-style bit-serial PE accelerator against ANT- and OliVe-style baselines, configured from
BitMoD's published simulator (Chen et al., HPCA 2025; github abdelfattah-lab/BitMoD-HPCA-25 @e445a5f, bitmod_sim/).

    hwsim sweep studies/bitmod_accelerators.py --report        (or: python3 -m studies.bitmod_accelerators)

Accelerators (studies/presets/bitmod/*.yaml, every number from the simulator's test_*.py and accelerator.py): one PE
array (BitMoD 64x16 for generation / 32x32 for discriminative tasks, dot-product width 4, bit-serial: 2 weight bits
per cycle; ANT the same arrays bit-parallel; OliVe 72x16 / 36x32, iso-area), 512 + 512 KB SRAM, DDR at 32 bytes
per cycle, FP16 activations, context 256, batch 1. Weight precisions as the simulator hard-codes them per model
(BitMoD lossy 3.0625 bits for generation, 4.0625 for discriminative; ANT 4-5; OliVe 4-4.5), every nn.Linear
quantized (LM head included, `wNa16-all`); KV cache 8-bit for BitMoD, 16-bit for the baselines. Generation is a
decode step at 256 cached tokens, discriminative a 256-token prefill; hwsim's NPU cost model times them (the
simulator's per-layer max(compute, DRAM) is what hwsim's roofline per op does too).
Compared with BitMoD's 1.69x / 1.48x average speedup over ANT / OliVe (abstract; Fig. 7). Two of the paper's six
models (OPT-1.3B, Yi-6B) have no preset here.
"""
from pathlib import Path

from sim.dse import Study

HERE = Path(__file__).resolve().parent / "presets" / "bitmod"
ACCEL = ("bitmod", "ant", "olive")
MODELS = {"phi-2": "microsoft/phi-2", "llama-2-7b": "meta-llama/Llama-2-7b-hf",
          "llama-2-13b": "meta-llama/Llama-2-13b-hf", "llama-3-8b": "meta-llama/Meta-Llama-3-8B"}
# weight bits per (accelerator, model) as bitmod_sim/test_ant.py and test_olive.py hard-code them; BitMoD per task
W_BITS = {"ant": {"phi-2": 5, "llama-2-7b": 5, "llama-2-13b": 4, "llama-3-8b": 5},
          "olive": {"phi-2": 4, "llama-2-7b": 4, "llama-2-13b": 4, "llama-3-8b": 4.5}}
BITMOD_BITS = {"decode": 3.0625, "prefill": 4.0625}
KV = {"bitmod": "int8", "ant": "fp16", "olive": "fp16"}
TASK = {"decode": "gen", "prefill": "disc"}


def _quant(bits) -> str:
    return f"w{float(bits):g}a16-all" if float(bits) != int(bits) else f"w{int(bits)}.0a16-all"


def keep(point) -> bool:
    """Only the simulator's own pairings: an accelerator with its task's array, its precision and its KV format."""
    device = Path(str(point["device"])).stem            # e.g. bitmod-gen
    accel, task = device.split("-")
    if TASK[point["phase"]] != task or point["kv_dtype"] != KV[accel]:
        return False
    bits = BITMOD_BITS[point["phase"]] if accel == "bitmod" else W_BITS[accel][point["model"]]
    return point["quant"] == _quant(bits)


def findings(df):
    import numpy as np
    ok = df[df["status"] == "ok"].copy()
    ok["accel"] = [Path(d).stem.split("-")[0] for d in ok["device"]]
    lines = [f"{'model':<13} {'task':<15} {'BitMoD':>9} {'ANT':>9} {'OliVe':>9}  speedup over ANT / OliVe"]
    over = {"ant": [], "olive": []}
    for phase, task in (("decode", "generation"), ("prefill", "discriminative")):
        for model in MODELS:
            cell = ok[(ok["model"] == model) & (ok["phase"] == phase)].set_index("accel")["latency_s"]
            if not all(a in cell for a in ACCEL):
                continue
            s_ant, s_olive = cell["ant"] / cell["bitmod"], cell["olive"] / cell["bitmod"]
            over["ant"].append(s_ant)
            over["olive"].append(s_olive)
            lines.append(f"{model:<13} {task:<15} {cell['bitmod'] * 1e3:>7.1f}ms {cell['ant'] * 1e3:>7.1f}ms "
                         f"{cell['olive'] * 1e3:>7.1f}ms  {s_ant:.2f}x / {s_olive:.2f}x")
    paper = {"ant": 1.69, "olive": 1.48}
    for base in ("ant", "olive"):
        mean = float(np.mean(over[base])) if over[base] else float("nan")
        gap = mean / paper[base] - 1
        verdict = "REPRODUCED" if abs(gap) <= 0.10 else f"NOT REPRODUCED ({gap:+.0%})"
        lines.append(f"mean speedup over {base.upper() if base == 'ant' else 'OliVe'}: {mean:.2f}x vs the paper's "
                     f"{paper[base]:.2f}x: {verdict}")
    gen = ok[ok["phase"] == "decode"]
    bound = gen.groupby("accel")["bound"].agg(lambda s: s.mode().iloc[0])
    lines.append("generation steps are " + ", ".join(f"{a} {b}-bound" for a, b in bound.items()) +
                 " (DDR at 32 B/cycle): their speedups follow weight bits; discriminative steps follow MACs per cycle")
    area = ok.groupby("accel")["area_mm2"].first()
    lines.append("die area (area model at 28 nm, PE areas from the simulator): " +
                 ", ".join(f"{a} {v:.1f} mm2" for a, v in area.items()))
    return "\n".join(lines)


study = Study(
    name="bitmod-accelerators",
    description="BitMoD bit-serial PE accelerator vs ANT / OliVe, BitMoD's simulator configuration",
    axes={"model": list(MODELS),
          "device": [str(HERE / f"{a}-{t}.yaml") for a in ACCEL for t in ("gen", "disc")],
          "phase": ["decode", "prefill"],
          "quant": sorted({_quant(b) for b in BITMOD_BITS.values()} |
                          {_quant(b) for m in W_BITS.values() for b in m.values()}),
          "kv_dtype": ["int8", "fp16"], "dtype": ["fp16"], "batch": [1], "seq_len": [256]},
    where=keep,
    constraints=["fits"],
    objectives={"latency_s": "min", "energy_j": "min"},
    findings=findings)


if __name__ == "__main__":
    import sys

    from sim.cli import main
    sys.exit(main(["sweep", __file__, "--report", *sys.argv[1:]]))
