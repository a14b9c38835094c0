"""hwsim's serving simulator beside Vidur (microsoft/vidur) on the same requests (issue 9 acceptance).

Vidur's repository ships measured MLP and collective profiles for H100/A100 but not its attention profiles
(over the size public snapshots keep), so this harness writes a stand-in `attention.csv` in Vidur's format filled
from hwsim's own attention costs (the same per-layer attention op hwsim's step cost uses, at the top clock) and
runs Vidur twice:
  A. Vidur's measured MLP/norm/projection profiles + hwsim attention: Vidur's own iteration times.
  B. hwsim-derived MLP profiles too (`--hwsim-mlp`): both simulators cost iterations from the same op times, so
     the remaining differences are the simulators' scheduling and batching (Vidur adds 10% to batched attention).
Both runs, and hwsim, get the same requests (Vidur's trace-replay generator reads the CSV written here).

Vidur is not part of hwsim and nothing of it is committed: point --vidur-src at an extracted checkout of
github.com/microsoft/vidur (7d47513 used here; `git archive HEAD -- . ':(exclude)*attention.csv'`) and --python at
an interpreter with its requirements (scikit-learn, pandas, wandb, ...).

    python3 benchmarks/serving/vidur_compare.py --vidur-src /tmp/vidur_src --python /tmp/vidurenv/bin/python
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MODEL, VIDUR_MODEL, LAYERS = "llama-2-7b", "meta-llama/Llama-2-7b-hf", 32
BATCH_CAP, TOKENS_IN_BATCH, MAX_TOKENS = 128, 4096, 4096


def step_cost():
    from sim.serving.step_cost import StepCost
    return StepCost(MODEL, "h100", "single", profile="fused", max_tokens=TOKENS_IN_BATCH, max_seqs=BATCH_CAP,
                    max_context=MAX_TOKENS)


def attention_csv(cost, path: Path):
    """Vidur's attention.csv columns; times in ms per layer, from hwsim's attention op at the top clock."""
    attn = lambda op: op.kind == "attention"
    rows = []
    b = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 112, 128], float)
    kv = np.arange(0, MAX_TOKENS + 1, 64, dtype=float)
    bb, kk = (x.ravel() for x in np.meshgrid(b, kv, indexing="ij"))
    dec = cost._points("decode", bb, np.ones_like(bb), kk, attn)[:, 0] / LAYERS * 1e3
    for x, k, t in zip(bb, kk, dec):
        rows.append((int(x), 0, int(k), np.nan, t))
    n = np.unique(np.concatenate([np.arange(16, 257, 16), np.rint(np.geomspace(256, MAX_TOKENS, 40))]))
    kv2 = np.arange(0, MAX_TOKENS + 1, 256, dtype=float)
    nn, kk = (x.ravel() for x in np.meshgrid(n, kv2, indexing="ij"))
    keep = nn + kk <= MAX_TOKENS
    nn, kk = nn[keep], kk[keep]
    pre = cost._points("chunked_prefill", np.ones_like(nn), nn, kk, attn, causal_scale=(kk + nn / 2) / (kk + nn))[:, 0] \
        / LAYERS * 1e3
    for x, k, t in zip(nn, kk, pre):
        rows.append((1, int(x), int(k), t, np.nan))
    df = pd.DataFrame(rows, columns=["batch_size", "prefill_chunk_size", "kv_cache_size",
                                     "time_stats.attn_prefill.median", "time_stats.attn_decode.median"])
    spec = cost.spec
    df.insert(0, "n_embd", spec.hidden)
    df.insert(1, "n_q_head", spec.heads)
    df.insert(2, "n_kv_head", spec.kv_heads)
    df.insert(3, "block_size", 16)
    df.insert(4, "num_tensor_parallel_workers", 1)
    df["time_stats.attn_kv_cache_save.median"] = 0.0
    df.to_csv(path, index=False)


def mlp_csv(cost, real: Path, path: Path):
    """Vidur's mlp.csv for TP1 with every op time (ms per layer) from hwsim's fused ops at the top clock."""
    base = pd.read_csv(real)
    base = base[base.num_tensor_parallel_workers == 1].copy()
    tokens = base.num_tokens.to_numpy(dtype=float)
    names = {"input_norm": "input_layernorm", "attn.q_proj+k_proj+v_proj": "attn_pre_proj",
             "attn.rope": "attn_rope", "attn.o_proj": "attn_post_proj", "mlp_norm": "post_attention_layernorm",
             "mlp.gate_proj+up_proj": "mlp_up_proj", "mlp.act": "mlp_act", "mlp.down_proj": "mlp_down_proj",
             "residual_attn": "add", "embed_tokens": "emb"}
    for op_name, col in names.items():
        vals = cost._points("chunked_prefill", np.ones_like(tokens), np.maximum(tokens, 2), np.full_like(tokens, 8),
                            lambda op, n=op_name: op.name == n)[:, 0]
        vals = vals / (1 if col == "emb" else LAYERS) * 1e3
        for stat in ("min", "max", "mean", "median"):
            base[f"time_stats.{col}.{stat}"] = vals
    base.to_csv(path, index=False)


def requests(n: int, rate: float, seed: int):
    from workloads.requests import synthetic
    df = synthetic(n, rate, "sharegpt", seed=seed, max_total=MAX_TOKENS)
    return df


def run_vidur(python, src: Path, work: Path, trace: Path, tag: str) -> tuple:
    out = work / f"out-{tag}"
    cmd = [python, "-m", "vidur.main", "--replica_config_device", "h100",
           "--replica_config_network_device", "h100_pairwise_nvlink", "--replica_config_model_name", VIDUR_MODEL,
           "--replica_config_tensor_parallel_size", "1", "--cluster_config_num_replicas", "1",
           "--replica_scheduler_config_type", "vllm", "--vllm_scheduler_config_batch_size_cap", str(BATCH_CAP),
           "--vllm_scheduler_config_max_tokens_in_batch", str(TOKENS_IN_BATCH),
           "--request_generator_config_type", "trace_replay", "--trace_request_generator_config_trace_file", str(trace),
           "--trace_request_generator_config_max_tokens", str(MAX_TOKENS),
           "--metrics_config_output_dir", str(out), "--no-metrics_config_write_json_trace",
           "--no-metrics_config_enable_chrome_trace", "--no-metrics_config_store_plots",
           "--random_forrest_execution_time_predictor_config_prediction_max_batch_size", str(BATCH_CAP),
           "--random_forrest_execution_time_predictor_config_prediction_max_tokens_per_request", str(MAX_TOKENS),
           # one forest per operator instead of Vidur's grid search (its default trains for tens of minutes here)
           "--random_forrest_execution_time_predictor_config_num_estimators", "64",
           "--random_forrest_execution_time_predictor_config_max_depth", "16",
           "--random_forrest_execution_time_predictor_config_min_samples_split", "2",
           "--random_forrest_execution_time_predictor_config_k_fold_cv_splits", "2",
           "--random_forrest_execution_time_predictor_config_no_cache"]
    env = dict(os.environ, PYTHONPATH=str(src), WANDB_MODE="disabled")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"Vidur failed ({tag}):\n{proc.stderr[-3000:]}")
    metrics = sorted(out.rglob("request_metrics.csv"))
    if not metrics:
        raise SystemExit(f"Vidur wrote no request_metrics.csv under {out}")
    return pd.read_csv(metrics[-1]), wall


def prepare(src: Path, work: Path, cost):
    """Vidur's data folder in `work`: its network and MLP profiles, and the stand-in attention profile."""
    prof = work / "data" / "profiling"
    comp = prof / "compute" / "h100" / VIDUR_MODEL
    comp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "data" / "profiling" / "network", prof / "network", dirs_exist_ok=True)
    real_mlp = src / "data" / "profiling" / "compute" / "h100" / VIDUR_MODEL / "mlp.csv"
    attention_csv(cost, comp / "attention.csv")
    shutil.copy(real_mlp, comp / "mlp.csv")
    return comp, real_mlp


def time_vidur(python, n=10_000, src="/tmp/vidur_src", rate=2.2, work="/tmp/vidur_speed"):
    """Wall time of one Vidur run of `n` ShareGPT requests under Poisson arrivals on Llama-2-7B / H100 (training
    of its operator models included, as a fresh Vidur run pays it), for benchmarks/serve_speed.py."""
    src, work = Path(src), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    prepare(src, work, step_cost())
    df = requests(n, rate, seed=1)
    trace = work / "trace.csv"
    pd.DataFrame({"arrived_at": df.arrival_s, "num_prefill_tokens": df.prompt_tokens,
                  "num_decode_tokens": df.output_tokens}).to_csv(trace, index=False)
    _, wall = run_vidur(python, src, work, trace, "speed")
    return wall


def summarize_vidur(df: pd.DataFrame, arrivals) -> dict:
    """Vidur's request_metrics.csv: TTFT = prefill_e2e_time, TPOT = decode time per decode token; throughput
    from the trace's arrival times (request ids are trace rows) and the end-to-end times."""
    ttft = df["prefill_e2e_time"].to_numpy(dtype=float)
    tpot = df["decode_time_execution_plus_preemption_normalized"].to_numpy(dtype=float)
    arrived = np.asarray(arrivals)[df["Request Id"].to_numpy(dtype=int)]
    span = float((arrived + df["request_e2e_time"].to_numpy(dtype=float)).max() - np.min(arrivals))
    return {"ttft_p50": float(np.percentile(ttft, 50)), "ttft_p90": float(np.percentile(ttft, 90)),
            "tpot_p50": float(np.percentile(tpot, 50)), "tpot_p90": float(np.percentile(tpot, 90)),
            "throughput_rps": len(df) / span}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vidur-src", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rates", default="2,4,6")
    ap.add_argument("--work", default="/tmp/vidur_work")
    args = ap.parse_args()
    from sim.serving import Pool, serve
    src, work = Path(args.vidur_src), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cost = step_cost()
    comp, real_mlp = prepare(src, work, cost)
    rows = []
    for rate in (float(x) for x in args.rates.split(",")):
        df = requests(args.requests, rate, seed=3)
        trace = work / f"trace-{rate:g}.csv"
        pd.DataFrame({"arrived_at": df.arrival_s, "num_prefill_tokens": df.prompt_tokens,
                      "num_decode_tokens": df.output_tokens}).to_csv(trace, index=False)
        pool = Pool(model=MODEL, system="h100", scheduler="vllm", max_seqs=BATCH_CAP, max_tokens=TOKENS_IN_BATCH,
                    max_context=MAX_TOKENS, profile="fused")
        out = {"rate": rate}
        # hwsim as it is, and with the power cap lifted (Vidur has no power model: its op times are at full clock)
        for tag, p in (("hwsim", pool), ("hwsim-uncapped", replace(pool, power_cap_w=1e9))):
            t0 = time.perf_counter()
            h = serve(df, p).summary
            out[tag + "_s"] = time.perf_counter() - t0
            out[tag] = {"ttft_p50": h["ttft_s_p50"], "ttft_p90": h["ttft_s_p90"], "tpot_p50": h["tpot_s_p50"],
                        "tpot_p90": h["tpot_s_p90"], "throughput_rps": h["throughput_rps"]}
        for tag in ("vidur-profiles", "hwsim-op-times"):
            if tag == "hwsim-op-times":
                mlp_csv(cost, real_mlp, comp / "mlp.csv")
            else:
                shutil.copy(real_mlp, comp / "mlp.csv")
            vdf, wall = run_vidur(args.python, src, work, trace, f"{tag}-{rate:g}")
            out[tag] = summarize_vidur(vdf, df.arrival_s.to_numpy())
            out[tag + "_s"] = wall
        rows.append(out)
        print(f"rate {rate:g}: done", flush=True)
    print(f"\nLlama-2-7B on one H100, vLLM scheduler (batch cap {BATCH_CAP}, {TOKENS_IN_BATCH} tokens/step), "
          f"{args.requests} ShareGPT requests, Poisson")
    print(f"{'rate':>5} {'run':<16} {'TTFT p50':>9} {'TTFT p90':>9} {'TPOT p50':>9} {'TPOT p90':>9} {'req/s':>7} {'wall s':>7}")
    for r in rows:
        for tag in ("hwsim", "vidur-profiles", "hwsim-uncapped", "hwsim-op-times"):
            s = r[tag]
            wall = r[tag + "_s"]
            print(f"{r['rate']:>5g} {tag:<16} {s['ttft_p50']:>9.3f} {s['ttft_p90']:>9.3f} {1e3 * s['tpot_p50']:>8.1f}m "
                  f"{1e3 * s['tpot_p90']:>8.1f}m {s['throughput_rps']:>7.3f} {wall:>7.1f}")
        for mine, tag in (("hwsim", "vidur-profiles"), ("hwsim-uncapped", "hwsim-op-times")):
            errs = [r[mine][k] / r[tag][k] - 1 for k in ("ttft_p50", "ttft_p90", "tpot_p50", "tpot_p90",
                                                         "throughput_rps")]
            print(f"      {mine} vs Vidur {tag:<16} " + "  ".join(f"{100 * e:+.0f}%" for e in errs))


if __name__ == "__main__":
    main()
