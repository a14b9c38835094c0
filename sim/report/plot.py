"""The roofline chart: device ceilings, and every op as a point sized by its share of step time.

The axes reach down to the smallest op plotted: norms, RoPE and the KV-cache append sit far below 1 GFLOP/s
yet take a fifth of a decode step, so a fixed floor would hide them. Op labels are placed where they overlap
no other label (or left out), so neighbouring ops stay readable.
"""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")   # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

PHASE_STYLE = {"prefill": ("o", "#1f77b4"), "decode": ("^", "#d62728"), "chunked_prefill": ("s", "#2ca02c")}
LABELS_PER_PHASE = 4
# label offsets in points from the op's centre, and the text alignment that goes with each
OFFSETS = [((6, 6), "left", "bottom"), ((6, -6), "left", "top"), ((-6, 6), "right", "bottom"),
           ((-6, -6), "right", "top"), ((0, 11), "center", "bottom"), ((0, -11), "center", "top")]


def figure(rooflines: list, title: str):
    """The matplotlib figure (one panel per device, side by side); the caller closes it."""
    n = len(rooflines)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 5.2), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], rooflines):
        _panel(ax, r)
    floor = min(_limits(r)[2] for r in rooflines)
    top = max(_limits(r)[3] for r in rooflines)
    for ax in axes[0]:
        ax.set_ylim(floor, top)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    for ax, r in zip(axes[0], rooflines):
        _label(fig, ax, r)
    return fig


def render(rooflines: list, title: str) -> bytes:
    """PNG bytes of one roofline panel per device, side by side."""
    fig = figure(rooflines, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _points(r):
    return {phase: [op for op in pred.ops if op["intensity"] and op["attained_flops"] > 0]
            for phase, pred in r.predictions.items()}


def _decade_below(v: float) -> float:
    return 10 ** math.floor(math.log10(v))


def _limits(r) -> tuple:
    """(x low, x high, y low, y high): the usual 0.05-1e5 FLOP/B and 1 GFLOP/s floor, widened to every op."""
    pts = [p for ps in _points(r).values() for p in ps]
    x_lo = min([0.05] + [_decade_below(p["intensity"]) for p in pts])
    x_hi = max([1e5] + [p["intensity"] * 3 for p in pts])
    y_lo = min([1e9] + [_decade_below(p["attained_flops"]) for p in pts])
    y_hi = max(list(r.ceilings.values()) or [1e15]) * 3
    return x_lo, x_hi, y_lo, y_hi


def _panel(ax, r):
    x_lo, x_hi, _, _ = _limits(r)
    steps = int(20 * math.log10(x_hi / x_lo)) + 1
    xs = [x_lo * 10 ** (k / 20) for k in range(steps + 1)]
    for i, (dtype, peak) in enumerate(sorted(r.ceilings.items(), key=lambda kv: -kv[1])):
        ax.plot(xs, [min(peak, x * r.bandwidth) for x in xs], color="black", lw=1.4 if i == 0 else 0.8,
                ls="-" if dtype in ("bf16", "fp16") else "--", label=f"{dtype} peak {peak / 1e12:.0f} T, "
                f"{r.bandwidth / 1e9:.0f} GB/s" if i == 0 else f"{dtype} peak {peak / 1e12:.0f} T")
    if r.attained_bandwidth and r.attained_bandwidth < r.bandwidth:
        top = max(r.ceilings.values()) if r.ceilings else 1e15
        ax.plot(xs, [min(top, x * r.attained_bandwidth) for x in xs], color="gray", lw=0.8, ls=":",
                label=f"achievable {r.attained_bandwidth / 1e9:.0f} GB/s (calibrated)")
    for phase, pts in _points(r).items():
        pred = r.predictions[phase]
        marker, color = PHASE_STYLE.get(phase, ("x", "gray"))
        ax.scatter([p["intensity"] for p in pts], [p["attained_flops"] for p in pts],
                   s=[12 + 900 * p["share"] for p in pts], marker=marker, color=color, alpha=0.55,
                   edgecolors="black", linewidths=0.4,
                   label=f"{phase}: {pred.latency_s * 1e3:.1f} ms, {pred.bound}-bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("attained FLOP/s")
    ax.set_title(r.device.name, fontsize=10)
    ax.grid(True, which="major", lw=0.3)
    ax.legend(fontsize=7, loc="lower right")


def _label(fig, ax, r):
    """Name the ops with the largest share of each phase, each where it overlaps no other label, no legend
    and stays inside the panel; an op with no free place is left unnamed (the HTML tables list them all)."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
    chosen = []
    for phase, pts in _points(r).items():
        color = PHASE_STYLE.get(phase, ("x", "gray"))[1]
        chosen += [(p, color) for p in sorted(pts, key=lambda p: -p["share"])[:LABELS_PER_PHASE]]
    for p, color in sorted(chosen, key=lambda pc: -pc[0]["share"]):
        for offset, ha, va in OFFSETS:
            text = ax.annotate(p["name"], (p["intensity"], p["attained_flops"]), fontsize=7, xytext=offset,
                               textcoords="offset points", ha=ha, va=va, color=color)
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                break
            text.remove()
