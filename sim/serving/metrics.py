"""Serving metrics: the per-request log, the per-iteration timeline and the summary (latency percentiles,
throughput, goodput under SLOs, queueing, preemptions, KV use, power and energy).

Definitions (as vLLM's benchmark_serving and Vidur report them):
- TTFT: first token time - arrival; E2E: last token time - arrival; queueing: first admission - arrival.
- TPOT: (E2E - TTFT) / (output tokens - 1), per request (requests of one output token have none).
- ITL: every gap between consecutive tokens of a request (all requests' gaps pooled for the percentiles).
- throughput: completed requests (and their output / prompt + output tokens) per second of the run, from the
  first arrival to the last completion.
- SLOs: per-request thresholds `ttft`, `tpot`, `e2e`, `itl` (max gap of a request); a metric with a statistic
  (`ttft_p99=1.0`) is also checked on the run's percentile. SLO attainment: the fraction of all requests
  (rejected ones fail) meeting every per-request threshold; goodput: those requests per second (DistServe).
- energy: each replica's iterations (clock under the power cap) plus idle power while it waits; a request's
  energy is its replica's energy split by tokens processed (prompt tokens computed plus output tokens).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workloads.errors import HwsimError

STATS = ("mean", "p50", "p90", "p99")
SLO_METRICS = ("ttft", "tpot", "e2e", "itl")


def parse_slo(text) -> dict:
    """'ttft_p99=1.0,tpot_p99=0.05' -> {'ttft_p99': 1.0, 'tpot_p99': 0.05} (seconds)."""
    if not text:
        return {}
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in filter(None, (p.strip() for p in str(text).split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise HwsimError(f"bad SLO '{part}'; write metric=seconds, e.g. ttft_p99=1.0,tpot_p99=0.05")
            items.append((key.strip().lower(), value))
    out = {}
    for key, value in items:
        metric, _, stat = key.partition("_")
        if metric not in SLO_METRICS or (stat and stat not in STATS + ("max",)):
            raise HwsimError(f"unknown SLO '{key}'; use ttft, tpot, e2e or itl, optionally with _mean/_p50/_p90/_p99")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise HwsimError(f"SLO {key}: '{value}' is not a number of seconds") from None
        if not v > 0:
            raise HwsimError(f"SLO {key} must be positive, got {v}")
        out[key] = v
    return out


def _stats(x, prefix: str) -> dict:
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return {f"{prefix}_{s}": None for s in STATS}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {f"{prefix}_mean": float(x.mean()), f"{prefix}_p50": float(p50), f"{prefix}_p90": float(p90),
            f"{prefix}_p99": float(p99)}


def weighted_percentiles(values, weights, qs):
    order = np.argsort(values, kind="stable")
    v, w = np.asarray(values)[order], np.asarray(weights, dtype=float)[order]
    keep = w > 0
    v, w = v[keep], w[keep]
    if len(v) == 0:
        return [None] * len(qs)
    cdf = np.cumsum(w) / w.sum()
    return [float(v[min(np.searchsorted(cdf, q / 100.0), len(v) - 1)]) for q in qs]


def _token_gaps(reqs, replicas):
    """All inter-token gaps as (values, weights) without listing every token, and each request's max gap."""
    ends = {rep.id: np.frombuffer(rep.dstep_end, dtype=float) if len(rep.dstep_end) else np.zeros(0)
            for rep in replicas}
    diffs = {k: np.diff(e) for k, e in ends.items()}
    cover = {k: np.zeros(len(e) + 1) for k, e in ends.items()}
    single, max_gap = [], np.full(len(reqs), np.nan)
    for i, r in enumerate(reqs):
        if r.first_token_at is None or r.output <= 1:
            continue
        segs = [(r.first_token_at, r.first_token_at)] + [(t, t) for t in r.extra_tokens]
        local = 0.0
        for rid, j0, j1 in r.runs:
            e = ends[rid]
            segs.append((e[j0], e[j1]))
            if j1 > j0:
                cover[rid][j0] += 1
                cover[rid][j1] -= 1
                local = max(local, float(diffs[rid][j0:j1].max()))
        segs.sort()
        for (a0, a1), (b0, b1) in zip(segs, segs[1:]):
            gap = b0 - a1
            single.append(gap)
            local = max(local, gap)
        max_gap[i] = local
    values = [np.asarray(single, dtype=float)]
    weights = [np.ones(len(single))]
    for k, d in diffs.items():
        if len(d):
            values.append(d)
            weights.append(np.cumsum(cover[k])[:len(d)])
    return np.concatenate(values), np.concatenate(weights), max_gap


def request_table(reqs, replicas) -> pd.DataFrame:
    by_id = {rep.id: rep for rep in replicas}
    per_token = {}
    for rep in replicas:
        cols = rep.log_columns()
        tokens = float(np.sum(cols["prefill_tokens"]) + np.sum(cols["decodes"]))
        per_token[rep.id] = float(np.sum(cols["energy_j"])) / tokens if tokens else 0.0
    _, _, max_gap = _token_gaps(reqs, replicas)
    rows = {k: [] for k in ("request", "arrival_s", "prompt_tokens", "output_tokens", "replica", "prefill_replica",
                            "admitted_s", "first_token_s", "finish_s", "prefix_hit_tokens", "preemptions", "swaps",
                            "kv_transfer_s", "energy_j", "tokens_emitted", "rejected")}
    for r in reqs:
        rows["request"].append(r.id)
        rows["arrival_s"].append(r.arrival)
        rows["prompt_tokens"].append(r.prompt)
        rows["output_tokens"].append(r.output)
        rep = by_id.get(r.replica)
        rows["replica"].append(rep.name if rep is not None else None)
        pre = by_id.get(r.prefill_replica)
        rows["prefill_replica"].append(pre.name if pre is not None else None)
        rows["admitted_s"].append(r.admitted_at)
        rows["first_token_s"].append(r.first_token_at)
        rows["finish_s"].append(r.finish_at)
        rows["prefix_hit_tokens"].append(r.hit_tokens)
        rows["preemptions"].append(r.preemptions)
        rows["swaps"].append(r.swaps)
        rows["kv_transfer_s"].append(r.transfer_s)
        if r.finish_at is not None:
            computed = r.prompt - r.hit_tokens
            if pre is not None:
                e = per_token.get(pre.id, 0.0) * computed + per_token.get(rep.id, 0.0) * (r.output - 1)
            else:
                e = per_token.get(r.replica, 0.0) * (computed + r.output)
        else:
            e = None
        rows["energy_j"].append(e)
        rows["tokens_emitted"].append(0 if r.finish_at is None else
                                      1 + len(r.extra_tokens) + sum(j1 - j0 + 1 for _, j0, j1 in r.runs))
        rows["rejected"].append(r.rejected or "")
    df = pd.DataFrame(rows)
    for col in ("admitted_s", "first_token_s", "finish_s", "energy_j"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["ttft_s"] = df.first_token_s - df.arrival_s
    df["e2e_s"] = df.finish_s - df.arrival_s
    df["queue_s"] = df.admitted_s - df.arrival_s
    df["tpot_s"] = np.where(df.output_tokens > 1, (df.finish_s - df.first_token_s) / (df.output_tokens - 1).clip(lower=1),
                            np.nan)
    df["max_itl_s"] = max_gap
    return df


def timeline(replicas) -> pd.DataFrame:
    frames = []
    for rep in replicas:
        df = pd.DataFrame(rep.log_columns())
        df.insert(0, "replica", rep.name)
        df["kv_used_fraction"] = (df.kv_blocks + df.kv_cached_blocks) / max(rep.kv.total, 1)
        df["devices"] = rep.devices
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for col in ("prefill_tokens", "chunks", "decodes", "kv_blocks", "kv_cached_blocks", "preempted", "running",
                "waiting", "swap_blocks"):
        if col in out:
            out[col] = out[col].astype(np.int64)
    return out


def meets(df: pd.DataFrame, slo: dict) -> np.ndarray:
    """Per request: completed and within every per-request threshold."""
    ok = df.finish_s.notna().to_numpy().copy()
    for key, limit in slo.items():
        metric = key.split("_")[0]
        col = {"ttft": "ttft_s", "tpot": "tpot_s", "e2e": "e2e_s", "itl": "max_itl_s"}[metric]
        vals = df[col].to_numpy()
        ok &= np.where(np.isnan(vals), True, vals <= limit) if metric in ("tpot", "itl") else (vals <= limit)
    return ok


def summarize(df: pd.DataFrame, replicas, reqs, slo: dict = None) -> dict:
    slo = slo or {}
    done = df[df.finish_s.notna()]
    out = {"requests": int(len(df)), "completed": int(len(done)), "rejected": int((df.rejected != "").sum())}
    start = float(df.arrival_s.min())
    end = float(done.finish_s.max()) if len(done) else start
    duration = max(end - start, 1e-12)
    out["duration_s"] = duration
    out["throughput_rps"] = len(done) / duration
    out["output_tokens_per_s"] = float(done.output_tokens.sum()) / duration
    out["total_tokens_per_s"] = float(done.prompt_tokens.sum() + done.output_tokens.sum()) / duration
    for metric, col in (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("e2e", "e2e_s"), ("queue", "queue_s")):
        out.update(_stats(done[col], metric + "_s"))
    values, weights, _ = _token_gaps(reqs, replicas)
    if weights.sum() > 0:
        mean = float(np.sum(values * weights) / weights.sum())
        p50, p90, p99 = weighted_percentiles(values, weights, (50, 90, 99))
        out.update({"itl_s_mean": mean, "itl_s_p50": p50, "itl_s_p90": p90, "itl_s_p99": p99})
    else:
        out.update({f"itl_s_{s}": None for s in STATS})
    out["preemptions"] = int(df.preemptions.sum())
    out["prefix_hit_tokens"] = int(df.prefix_hit_tokens.sum())
    out["prefix_hit_rate"] = float(df.prefix_hit_tokens.sum() / max(df.prompt_tokens.sum(), 1))
    busy, energy, w_sum, dec_w, kv_w, kv_peak, iters = {}, 0.0, 0.0, 0.0, 0.0, 0.0, 0
    for rep in replicas:            # from the replicas' logs directly (a million-request timeline is large)
        cols = rep.log_columns()
        t = cols["time_s"]
        busy[rep.name] = float(t.sum())
        energy += float(cols["energy_j"].sum())
        used = (cols["kv_blocks"] + cols["kv_cached_blocks"]) / max(rep.kv.total, 1)
        w_sum += float(t.sum())
        dec_w += float(np.dot(cols["decodes"], t))
        kv_w += float(np.dot(used, t))
        kv_peak = max(kv_peak, float(used.max()) if len(used) else 0.0)
        iters += len(t)
    idle = 0.0
    devices = 0
    for rep in replicas:
        devices += rep.devices
        idle_s = max(duration - busy.get(rep.name, 0.0), 0.0)
        idle += idle_s * rep.cost.device.power.idle_w * rep.devices
    out["energy_j"] = energy + idle
    out["avg_power_w"] = out["energy_j"] / duration
    out["avg_power_per_device_w"] = out["avg_power_w"] / max(devices, 1)
    out["energy_per_request_j"] = out["energy_j"] / max(len(done), 1)
    out["energy_per_output_token_j"] = out["energy_j"] / max(float(done.output_tokens.sum()), 1.0)
    out["devices"] = devices
    if iters:
        out["mean_batch_decodes"] = dec_w / max(w_sum, 1e-30)
        out["mean_kv_used_fraction"] = kv_w / max(w_sum, 1e-30)
        out["peak_kv_used_fraction"] = kv_peak
        out["iterations"] = iters
    if slo:
        ok = meets(df, {k: v for k, v in slo.items()})
        out["slo"] = dict(slo)
        out["slo_attainment"] = float(ok.mean())
        out["goodput_rps"] = float(ok.sum()) / duration
        checks = {}
        for key, limit in slo.items():
            metric, _, stat = key.partition("_")
            if stat:
                got = out.get(f"{metric}_s_{stat}") if stat != "max" else float(df[f"{'max_itl' if metric == 'itl' else metric}_s"].max())
                checks[key] = {"limit": limit, "value": got, "met": got is not None and got <= limit}
        out["slo_checks"] = checks
        out["slo_met"] = all(c["met"] for c in checks.values()) if checks else out["slo_attainment"] >= 0.9
    return out


def littles_law(df: pd.DataFrame, tl: pd.DataFrame, lo: float, hi: float) -> tuple:
    """(L measured from the replicas' queues, lambda x W from the request log) over the window [lo, hi]:
    L is the time average of requests queued or running, sampled at every iteration start."""
    span = hi - lo
    sel = tl[(tl.start_s >= lo) & (tl.start_s < hi)]
    occupancy = float(np.sum((sel.running + sel.waiting) * sel.time_s))
    # idle gaps hold nobody; the per-replica sums add up across replicas
    L = occupancy / span
    arrived = df[(df.arrival_s >= lo) & (df.arrival_s < hi) & df.finish_s.notna()]
    lam = len(arrived) / span
    W = float(arrived.e2e_s.mean())
    return L, lam * W
