"""Study (a): HBM bandwidth x compute x memory capacity (x power cap) of a hypothetical H100-class GPU for
Llama-3.1-70B decode and prefill.

    hwsim sweep studies/hbm_compute_sweep.py --report        (or: python3 -m studies.hbm_compute_sweep)

Every device is the calibrated H100 with overrides (hw_models/overrides.py: peaks rederived, calibration
carried over, static power with die area); area and $/hour come from the area/cost model (the H100's cloud
price scaled by chip cost). The findings are computed from the sweep's table and set beside LLMCompass's
(Zhang et al., ISCA 2024, section VI and abstract): decode follows memory bandwidth and is nearly insensitive to
compute, prefill follows compute, so cutting compute raises decode performance per cost.
"""
from sim.dse import Study

BW = ["2TB/s", "3.35TB/s", "4.8TB/s", "6.7TB/s", "10TB/s"]
SMS = [33, 66, 132, 198, 264]


def findings(df):
    import numpy as np
    ok = df[(df["status"] == "ok")]
    lines = []

    def lat(phase, bw, sms, mem="192GB", tdp="2000W", quant="none", batch=8, seq=8192):
        row = ok[(ok["phase"] == phase) & (ok["hw.hbm.bandwidth"] == bw) & (ok["hw.sm_count"] == sms) &
                 (ok["hw.memory"] == mem) & (ok["hw.tdp"] == tdp) & (ok["quant"] == quant) &
                 (ok["batch"] == batch) & (ok["seq_len"] == seq)]
        return float(row["latency_s"].iloc[0])

    d_bw = lat("decode", "6.7TB/s", 132) / lat("decode", "3.35TB/s", 132)
    d_sm = lat("decode", "3.35TB/s", 264) / lat("decode", "3.35TB/s", 132)
    p_bw = lat("prefill", "6.7TB/s", 132, batch=1) / lat("prefill", "3.35TB/s", 132, batch=1)
    p_sm = lat("prefill", "3.35TB/s", 264, tdp="2000W", batch=1) / lat("prefill", "3.35TB/s", 132, tdp="2000W",
                                                                        batch=1)
    p_sm_caps = {cap: lat("prefill", "3.35TB/s", 264, tdp=cap, batch=1) / lat("prefill", "3.35TB/s", 132, tdp=cap,
                                                                              batch=1) for cap in ("1000W", "700W")}
    lines.append("Llama-3.1-70B bf16 on an H100 with 192 GB (decode: batch 8, 8,192 cached tokens; prefill: one "
                 "8,192-token prompt), no binding power cap (2000 W):")
    lines.append(f"  2x HBM bandwidth (3.35 -> 6.7 TB/s): decode latency x{d_bw:.2f}, prefill x{p_bw:.2f}")
    lines.append(f"  2x SMs (132 -> 264):                 decode latency x{d_sm:.2f}, prefill x{p_sm:.2f}; under a cap "
                 f"prefill x{p_sm_caps['1000W']:.2f} at 1000 W, x{p_sm_caps['700W']:.2f} at the H100's 700 W (the "
                 f"added SMs' static power and FLOP energy push the clock down)")
    ok_decode = d_bw <= 0.6 and d_sm >= 0.9
    ok_prefill = p_sm <= 0.65 and p_bw >= 0.9
    lines.append("  LLMCompass (ISCA'24 sec. VI): decode follows memory bandwidth and barely compute; prefill follows "
                 "compute.")
    lines.append(f"    decode:  {'REPRODUCED' if ok_decode else 'NOT REPRODUCED'} (bandwidth x{d_bw:.3f} vs <= 0.6 "
                 f"expected, compute x{d_sm:.3f} vs >= 0.9)")
    lines.append(f"    prefill: {'REPRODUCED' if ok_prefill else 'NOT REPRODUCED'} (compute x{p_sm:.3f} vs <= 0.65 "
                 f"expected, bandwidth x{p_bw:.3f} vs >= 0.9); LLMCompass models no power cap: at a fixed cap the "
                 f"compute gain shrinks or reverses (above)")
    from sim.dse.sensitivity import sensitivity
    for phase in ("decode", "prefill"):
        part = ok[(ok["phase"] == phase) & ok["feasible"]]
        rows = sensitivity(part, ["hw.hbm.bandwidth", "hw.sm_count", "hw.memory", "hw.tdp", "batch", "quant"],
                           "latency_s")
        lines.append(f"  {phase} latency, share of log-variance by axis: " +
                     ", ".join(f"{r['axis']} {r['first_order']:.2f}" for r in rows))
    # memory capacity gates feasibility
    need = ok[(ok["quant"] == "none") & (ok["phase"] == "decode")]
    fits = need.groupby("hw.memory")["fits"].mean()
    lines.append("  share of bf16 decode points that fit, by capacity: " +
                 ", ".join(f"{k} {v:.0%}" for k, v in fits.items()))
    # performance per cost: each design at its cheapest feasible batch (fp8 decode, 2k context)
    dec = ok[(ok["phase"] == "decode") & ok["feasible"] & (ok["seq_len"] == 2048) & (ok["quant"] == "fp8")]
    per_design = dec.loc[dec.groupby("hardware")["usd_per_mtoken"].idxmin()]
    stock = per_design[per_design["hardware"] == "h100+hbm.bandwidth=3.35TB/s+sm_count=132+memory=80GB+tdp=700W"]
    if len(per_design) and len(stock):
        best = per_design.loc[per_design["usd_per_mtoken"].idxmin()]
        gain = float(stock["usd_per_mtoken"].iloc[0]) / float(best["usd_per_mtoken"])
        lines.append(f"  cheapest fp8 decode design (2k context, best batch each): {best['hardware']} at batch "
                     f"{int(best['batch'])}, {best['usd_per_mtoken']:.3f} $/Mtoken: {gain:.2f}x the stock H100 shape "
                     f"({float(stock['usd_per_mtoken'].iloc[0]):.3f} $/Mtoken at batch {int(stock['batch'].iloc[0])})")
        fewer = int(best["hw.sm_count"]) < 132
        lines.append(f"    LLMCompass: up to 3.41x performance/cost over an A100 by cutting compute or replacing HBM: "
                     f"{'REPRODUCED in direction' if gain > 1 and fewer else 'NOT REPRODUCED'} (here {gain:.2f}x, "
                     f"{'with' if fewer else 'without'} fewer SMs; gap to 3.41x: {gain / 3.41 - 1:+.0%}; a different "
                     f"baseline and space: HBM is kept and priced by the area model)")
    return "\n".join(lines)


study = Study(
    name="hbm-compute-sweep",
    description="HBM bandwidth x SMs x HBM capacity x power cap of an H100-class GPU, Llama-3.1-70B decode/prefill",
    axes={"model": ["llama-3.1-70b"], "device": ["h100"],
          "hw.hbm.bandwidth": BW, "hw.sm_count": SMS, "hw.memory": ["80GB", "141GB", "192GB", "288GB"],
          "hw.tdp": ["700W", "1000W", "2000W"], "quant": ["none", "fp8"], "phase": ["decode", "prefill"],
          "batch": [1, 8, 64, 256], "seq_len": [2048, 8192]},
    constraints=["fits"],
    objectives={"latency_s": "min", "usd_per_mtoken": "min"},
    findings=findings)


if __name__ == "__main__":
    import sys

    from sim.cli import main
    sys.exit(main(["sweep", __file__, "--report", *sys.argv[1:]]))
