"""The roofline chart: device ceilings, and every op as a point sized by its share of step time."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")   # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

PHASE_STYLE = {"prefill": ("o", "#1f77b4"), "decode": ("^", "#d62728"), "chunked_prefill": ("s", "#2ca02c"),
               "forward": ("D", "#9467bd")}


def render(rooflines: list, title: str) -> bytes:
    """PNG bytes of one roofline panel per device, side by side."""
    n = len(rooflines)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 5.2), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], rooflines):
        _panel(ax, r)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _panel(ax, r):
    xs = [10 ** (k / 20) for k in range(-40, 101)]         # 0.01 .. 1e5 FLOP/byte
    for i, (dtype, peak) in enumerate(sorted(r.ceilings.items(), key=lambda kv: -kv[1])):
        ax.plot(xs, [min(peak, x * r.bandwidth) for x in xs], color="black", lw=1.4 if i == 0 else 0.8,
                ls="-" if dtype in ("bf16", "fp16") else "--", label=f"{dtype} peak {peak / 1e12:.0f} T, "
                f"{r.bandwidth / 1e9:.0f} GB/s" if i == 0 else f"{dtype} peak {peak / 1e12:.0f} T")
    if r.attained_bandwidth and r.attained_bandwidth < r.bandwidth:
        top = max(r.ceilings.values()) if r.ceilings else 1e15
        ax.plot(xs, [min(top, x * r.attained_bandwidth) for x in xs], color="gray", lw=0.8, ls=":",
                label=f"achievable {r.attained_bandwidth / 1e9:.0f} GB/s (calibrated)")
    for phase, pred in r.predictions.items():
        marker, color = PHASE_STYLE.get(phase, ("D", "gray"))
        pts = [op for op in pred.ops if op["intensity"] and op["attained_flops"] > 0]
        ax.scatter([p["intensity"] for p in pts], [p["attained_flops"] for p in pts],
                   s=[12 + 900 * p["share"] for p in pts], marker=marker, color=color, alpha=0.55,
                   edgecolors="black", linewidths=0.4,
                   label=f"{phase}: {pred.latency_s * 1e3:.1f} ms, {pred.bound}-bound")
        for p in sorted(pts, key=lambda p: -p["share"])[:3]:
            ax.annotate(p["name"], (p["intensity"], p["attained_flops"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.05, 1e5)
    ax.set_ylim(1e9, max(r.ceilings.values() or [1e15]) * 3)
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("attained FLOP/s")
    ax.set_title(r.device.name, fontsize=10)
    ax.grid(True, which="major", lw=0.3)
    ax.legend(fontsize=7, loc="lower right")
