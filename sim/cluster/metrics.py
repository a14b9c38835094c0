"""What a row run reports: row power statistics, controller events, latency and throughput per priority class, energy,
and the impact of a policy against a reference (uncapped) run."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THRESHOLDS = (0.80, 0.89, 1.0)


def weighted_quantile(values, weights, q):
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    if values.size == 0 or weights.sum() <= 0:
        return float("nan")
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cw = np.cumsum(w) - 0.5 * w
    return float(np.interp(q * w.sum(), cw, v))


def latency_stats(samples: dict) -> dict:
    """samples: metric -> array of values, or (values, weights). p50/p99 (and mean) per metric."""
    out = {}
    for m, x in samples.items():
        if isinstance(x, tuple):
            v, w = x
        else:
            v = np.asarray(x, float)
            w = np.ones(len(v))
        ok = np.isfinite(v)
        v, w = v[ok], w[ok]
        name = m[:-2] if m.endswith("_s") else m
        out[f"{name}_p50_s"] = weighted_quantile(v, w, 0.50)
        out[f"{name}_p99_s"] = weighted_quantile(v, w, 0.99)
        out[f"{name}_mean_s"] = float(np.sum(v * w) / w.sum()) if w.sum() > 0 else float("nan")
    return out


def row_stats(row_w: np.ndarray, dt: float, budget_w: float, thresholds=THRESHOLDS) -> dict:
    row_w = np.asarray(row_w, float)
    frac = row_w / budget_w
    out = {"mean_w": float(row_w.mean()), "p99_w": float(np.quantile(row_w, 0.99)), "peak_w": float(row_w.max()),
           "mean_fraction": float(frac.mean()), "p99_fraction": float(np.quantile(frac, 0.99)),
           "peak_fraction": float(frac.max()), "energy_j": float(row_w.sum() * dt),
           "energy_kwh": float(row_w.sum() * dt / 3.6e6)}
    for th in thresholds:
        above = frac > th
        out[f"time_above_{th:.2f}_s"] = float(above.sum() * dt)
        out[f"longest_above_{th:.2f}_s"] = float(_longest_run(above) * dt)
    return out


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    m = np.concatenate([[0], mask.astype(np.int8), [0]])
    d = np.diff(m)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return int((ends - starts).max())


def window_rise(row_w: np.ndarray, dt: float, window_s: float, budget_w: float) -> float:
    """The largest rise of the row's mean power from one `window_s` window to the next, as a fraction of the budget:
    how much the power a controller acting every `window_s` sees can grow between two of its decisions. Our reading
    of POLCA's 'largest spike within 40 s' (the paper's text was not available here to confirm it)."""
    x = np.asarray(row_w, float)
    n = max(int(round(window_s / dt)), 1)
    if len(x) < 2 * n:
        return 0.0
    y = x[:len(x) // n * n].reshape(-1, n).mean(axis=1)
    return float(np.max(np.diff(y)) / budget_w)


def largest_spike(row_w: np.ndarray, dt: float, window_s: float, budget_w: float) -> float:
    """The largest rise of row power within `window_s` (max over t of P(t + window) - min over the window before),
    on 1-s averages, as a fraction of the budget (POLCA's 'largest spike within 40 s')."""
    x = np.asarray(row_w, float)
    if dt < 1.0:
        k = int(round(1.0 / dt))
        x = x[:len(x) // k * k].reshape(-1, k).mean(axis=1)
        dt = 1.0
    n = max(int(round(window_s / dt)), 1)
    if len(x) <= n:
        return float((x.max() - x.min()) / budget_w) if len(x) else 0.0
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(x, n + 1)
    run_min = np.minimum.accumulate(win, axis=1)
    return float((win - run_min).max() / budget_w)


@dataclass
class PowerResult:
    path: str
    spec: dict
    policy: str
    policy_params: dict
    dt: float
    row_w: np.ndarray
    server_energy_j: np.ndarray
    events: list
    classes: dict
    budget_w: float
    duration_s: float
    wall_s: float
    extra: dict = field(default_factory=dict)

    def stats(self) -> dict:
        th = (self.policy_params.get("t1", 0.80), self.policy_params.get("t2", 0.89), self.policy_params.get("brake", 1.0))
        out = row_stats(self.row_w, self.dt, self.budget_w, th)
        out["largest_spike_40s_fraction"] = largest_spike(self.row_w, self.dt, 40.0, self.budget_w)
        out["window_rise_40s_fraction"] = window_rise(self.row_w, self.dt, 40.0, self.budget_w)
        out["server_energy_sum_j"] = float(np.sum(self.server_energy_j))
        kinds = {}
        for e in self.events:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        out["events"] = kinds
        out["brake_events"] = kinds.get("brake", 0)
        return out

    def impact(self, ref: "PowerResult") -> dict:
        """Per class: relative change of each latency statistic, of the work rate (`throughput`) and of served tokens per
        busy GPU-second (`served_per_busy`) against `ref`."""
        out = {}
        for p, c in self.classes.items():
            r = ref.classes.get(p)
            if r is None:
                continue
            d = {}
            for k, v in c.items():
                if k.endswith("_s") and ("p50" in k or "p99" in k) and r.get(k):
                    d[k.replace("_s", "")] = v / r[k] - 1.0
            # throughput: the rate at which the class's GPUs do their work (the same iterations uncapped over as run),
            # against the reference's; what a saturated server would lose. Served tokens per busy GPU-second is
            # reported apart: below saturation every request is served whatever the cap
            if c.get("work_rate", 0) > 0 and r.get("work_rate", 0) > 0:
                d["throughput"] = c["work_rate"] / r["work_rate"] - 1.0
            else:
                d["throughput"] = float("nan")
            d["served_per_busy"] = c["tokens_per_busy_gpu_s"] / r["tokens_per_busy_gpu_s"] - 1.0 \
                if r.get("tokens_per_busy_gpu_s") else float("nan")
            out[p] = d
        return out

    def to_dict(self, ref: "PowerResult" = None) -> dict:
        doc = {"path": self.path, "row": self.spec, "policy": self.policy, "policy_params": self.policy_params,
               "duration_s": self.duration_s, "step_s": self.dt, "budget_w": self.budget_w,
               "power": self.stats(), "classes": self.classes,
               "events": [e.to_dict() for e in self.events[:1000]], "events_total": len(self.events),
               "run_s": round(self.wall_s, 3)}
        if ref is not None:
            doc["impact_vs_uncapped"] = self.impact(ref)
            doc["uncapped_power"] = ref.stats()
        return doc
