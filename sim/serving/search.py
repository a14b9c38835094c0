"""Searches over serving runs: the highest request rate a deployment sustains under SLOs (bisection on the
rate), static-batching generate tables, and a capacity planner that ranks deployments by cost."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from workloads.errors import HwsimError


def scaled(requests: pd.DataFrame, rate: float) -> pd.DataFrame:
    """The same requests with arrivals rescaled to `rate` per second (the request mix and the arrival pattern
    stay the same across a sweep, so runs differ only by load)."""
    roots = requests.parent.to_numpy() < 0
    t = requests.arrival_s.to_numpy(dtype=float)
    span = t[roots].max() - t[roots].min()
    n = int(roots.sum())
    if n < 2 or span <= 0:
        raise HwsimError("a rate search needs requests that arrive over time (two or more, not all at once)")
    out = requests.copy()
    out.loc[roots, "arrival_s"] = (t[roots] - t[roots].min()) * ((n - 1) / span) / rate
    return out


def _point(result, rate):
    s = result.summary
    keys = ("throughput_rps", "output_tokens_per_s", "ttft_s_p50", "ttft_s_p99", "tpot_s_p50", "tpot_s_p99",
            "e2e_s_p50", "e2e_s_p99", "itl_s_p99", "slo_attainment", "goodput_rps", "avg_power_w", "rejected")
    p = {"rate": rate, **{k: s.get(k) for k in keys}}
    p["slo_met"] = bool(s.get("slo_met")) and s.get("rejected", 0) == 0
    return p


def find_max_rate(requests: pd.DataFrame, run, slo: dict, start: float = 1.0, tol: float = 0.03,
                  max_runs: int = 24, progress=None):
    """Highest rate at which `run(requests)` meets `slo` (every percentile check, no rejections).
    `run` takes a request table and returns a ServeResult. Returns (rate, points, result at that rate)."""
    if not slo:
        raise HwsimError("--find-max-rate needs --slo (e.g. ttft_p99=1.0,tpot_p99=0.05)")
    points, state = [], {"lo": 0.0, "hi": None, "res": None}

    def trial(rate):
        res = run(scaled(requests, rate))
        p = _point(res, rate)
        points.append(p)
        if progress:
            progress(p)
        if p["slo_met"]:
            state["lo"], state["res"] = max(state["lo"], rate), res if rate >= state["lo"] else state["res"]
        else:
            state["hi"] = rate if state["hi"] is None else min(state["hi"], rate)
        return p["slo_met"]

    rate = start
    while len(points) < max_runs and state["hi"] is None:          # grow until the SLO breaks
        trial(rate)
        rate *= 2.0
    if state["hi"] is None:
        # the SLO held at every rate tried: the requests arrive all but at once and still meet it, so the run is too
        # short to load the deployment and the rate it sustains is unknown (not the last rate tried)
        top = max(points, key=lambda p: p["rate"])
        raise HwsimError(f"the SLO holds at every rate tried, up to {top['rate']:.3g} requests/s, where the "
                         f"{int((requests.parent.to_numpy() < 0).sum())} requests arrive all but at once "
                         f"({top['throughput_rps'] or 0:.3g} served per second): too few to load the deployment; use "
                         f"more requests (--requests) or a tighter --slo")
    rate = state["hi"] / 2.0
    while len(points) < max_runs and state["lo"] == 0.0 and rate > start * 1e-3:   # shrink until it holds
        trial(rate)
        rate /= 2.0
    while len(points) < max_runs and state["lo"] > 0 and state["hi"] is not None \
            and (state["hi"] - state["lo"]) / state["hi"] > tol:
        trial(0.5 * (state["lo"] + state["hi"]))
    best, best_res = state["lo"], state["res"]
    points.sort(key=lambda p: p["rate"])
    return best, points, best_res


def static_table(pool, batches, inputs, outputs, serve) -> pd.DataFrame:
    """Generate-style throughput: a batch of B requests of I prompt and O output tokens run to completion with
    static batching (as FasterTransformer / TensorRT-LLM gptSessionBenchmark and vLLM's benchmark_latency do)."""
    from workloads.requests import frame
    rows = []
    for b in batches:
        for i in inputs:
            for o in outputs:
                df = frame(np.zeros(b), np.full(b, i), np.full(b, o))
                res = serve(df, replace(pool, scheduler="static", max_seqs=b, replicas=1))
                req = res.requests
                why = req.rejected[req.rejected != ""]
                if len(why):            # its row was NaN, exit 0 (a 100000-token prompt at a 2048-token context)
                    raise HwsimError(f"static batch {b} of {i} + {o} tokens: its requests cannot be served "
                                     f"({why.iloc[0]}); give shorter lengths, a smaller batch or more memory")
                total = float(req.finish_s.max())
                rows.append({"batch": b, "input_len": i, "output_len": o, "latency_s": total,
                             "ttft_s": float(req.first_token_s.max()),
                             "tpot_s": float((req.finish_s.max() - req.first_token_s.max()) / max(o - 1, 1)),
                             "output_tokens_per_s": b * o / total, "total_tokens_per_s": b * (i + o) / total,
                             "energy_j": res.summary["energy_j"],
                             "avg_power_w": res.summary["avg_power_w"], "rejected": res.summary["rejected"]})
    return pd.DataFrame(rows)


def plan(requests: pd.DataFrame, target_rate: float, slo: dict, candidates, serve, progress=None) -> pd.DataFrame:
    """Cheapest deployment meeting `slo` at `target_rate`: for each candidate pool (one replica), the highest
    rate one replica sustains, then replicas = ceil(target / that), cost = replicas x devices x $/device-hour.
    Replicas behind a load-balancing router are assumed to scale linearly (each sees rate / replicas)."""
    from hw_models.systems import load_system
    rows = []
    for pool in candidates:
        try:
            system = load_system(pool.system)
            device = system.device(next(iter(system.devices)))
            price = device.price_usd_per_hour
            best, _, res = find_max_rate(requests, lambda df, p=pool: serve(df, replace(p, replicas=1), slo=slo), slo,
                                         start=max(target_rate / 16, 0.05))
            tp = _degree(pool.mapping)
            if best <= 0:
                rows.append({"system": pool.system, "mapping": pool.mapping, "scheduler": pool.scheduler,
                             "max_rate_per_replica": 0.0, "replicas": None, "devices": None, "usd_per_hour": None,
                             "note": "misses the SLO at any rate"})
                continue
            replicas = math.ceil(target_rate / best - 1e-9)
            rows.append({"system": pool.system, "device": device.id, "mapping": pool.mapping,
                         "scheduler": pool.scheduler, "max_rate_per_replica": best, "replicas": replicas,
                         "devices": replicas * tp,
                         "usd_per_hour": replicas * tp * price if price else None,
                         "ttft_s_p99": res.summary["ttft_s_p99"], "tpot_s_p99": res.summary["tpot_s_p99"],
                         "note": "" if price else "no price in the device preset"})
        except HwsimError as exc:
            rows.append({"system": pool.system, "mapping": pool.mapping, "scheduler": pool.scheduler,
                         "max_rate_per_replica": None, "replicas": None, "devices": None, "usd_per_hour": None,
                         "note": str(exc)})
        if progress:
            progress(rows[-1])
    df = pd.DataFrame(rows)
    if len(df) and "usd_per_hour" in df:
        df = df.sort_values(["usd_per_hour", "devices"], na_position="last", kind="stable").reset_index(drop=True)
        df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def _degree(mapping: str) -> int:
    n = 1
    for part in mapping.split(","):
        name, _, d = part.partition(":")
        if name.strip() in ("tp", "pp", "ep") and d:
            n *= int(d)
    return n
