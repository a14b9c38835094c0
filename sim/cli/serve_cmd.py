"""`hwsim serve` and `hwsim plan`: requests over time on replicas of a model (the serving simulation)."""
from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from workloads.errors import HwsimError, not_applicable

from .flag_names import speaks_flags
from .output import command, document, emit_json, table

EXAMPLES = """examples:
  hwsim serve --model llama-3.1-70b --system dgx-h100 --mapping tp:4 --rate 2 --requests 2000 --dataset sharegpt
  hwsim serve --model llama-3.1-8b --system h100 --scheduler sarathi --rate 10 --slo ttft_p99=1.0,tpot_p99=0.05 --json
  hwsim serve --model llama-3.1-70b --system dgx-h100 --mapping tp:4 --replicas 2 --trace azure-conv-2023 \\
      --max-requests 5000 --out run1        # requests.parquet, timeline.parquet, summary.json, trace.json, report.html
  hwsim serve --model llama-3.1-8b --system h100 --dataset sharegpt --requests 1000 --find-max-rate \\
      --slo ttft_p99=2.0,tpot_p99=0.1
  hwsim serve --model llama-3.1-8b --system h100 --static --batch 1,16,64 --input-len 128,2048 --output-len 128
  hwsim serve --model llama-3.1-70b --system dgx-h100 --mapping tp:4 --prefill-replicas 1 --decode-replicas 1 \\
      --decode-mapping tp:4 --rate 1 --dataset sharegpt   # prefill/decode disaggregation, KV over NVLink
  hwsim serve --model llama-3.1-8b --system h100 --system-prompt 2000 --prefix-caching --rate 5
  hwsim plan --model llama-3.1-70b --dataset sharegpt --rate 20 --slo ttft_p99=2,tpot_p99=0.1 \\
      --systems dgx-h100,dgx-a100 --tp 2,4,8 --schedulers vllm,sarathi

Requests come from --dataset (length samples of public datasets; arrivals drawn at --rate), --trace (a CSV/
Parquet/JSONL file with prompt/output lengths and times, or azure-conv-2023 / azure-code-2023 / mooncake-conv) or
--input-len/--output-len (fixed lengths). Schedulers: vllm (prefill-priority, whole prompts), vllm-chunked and
sarathi (chunked prefill beside decodes), orca (iteration-level, KV reserved), static (FasterTransformer).
"""


# Pool and serve() arguments (as the library's errors and warnings name them) -> the flags that set them here
FLAGS = {"max_seqs": "--max-seqs", "max_tokens": "--max-batched-tokens", "chunked": "--chunked/--no-chunked",
         "chunked=False": "--no-chunked", "prefix_caching": "--prefix-caching", "block_size": "--block-size",
         "memory_utilization": "--gpu-memory-utilization", "max_context": "--max-model-len",
         "max_context=": "--max-model-len ", "kv_blocks": "--kv-blocks", "memory_gib": "--device-memory-gib",
         "batch_timeout_s": "--batch-timeout", "power_cap_w": "--power-cap", "kv_link_gbps": "--kv-link-gbps",
         "priority": "--priority", "preemption": "--preemption", "quant": "--quant", "replicas": "--replicas",
         "replicas=": "--replicas "}


def _ints(text, what):
    try:
        vals = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise HwsimError(f"--{what} must be whole numbers separated by commas, e.g. 1,8,64") from None
    if not vals or min(vals) <= 0:
        raise HwsimError(f"--{what} must be positive")
    return vals


def _positive(name, value):
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise HwsimError(f"--{name} must be positive, got {value}")


def add_deployment_args(p):
    g = p.add_argument_group("deployment")
    g.add_argument("--model", required=True, help="model preset (see `hwsim models`) or a config.json path")
    g.add_argument("--system", help="system preset (see `hwsim systems`) or device preset of each replica")
    g.add_argument("--mapping", default="single", help="per replica: single or tp:N (default single)")
    g.add_argument("--replicas", type=int, default=1, help="identical replicas behind the router (default 1)")
    g.add_argument("--scheduler", default="vllm", help="vllm, vllm-chunked, sarathi, orca or static (default vllm)")
    g.add_argument("--router", default="least-tokens",
                   help="round-robin, least-tokens, least-requests or prefix-affinity (default least-tokens)")
    g.add_argument("--profile", default="fused", help="software stack: fused (vLLM/TensorRT-LLM), eager, or a serving profile (vllm, trtllm, sglang ...)")
    g.add_argument("--dtype", default="bf16", help="compute dtype (default bf16)")
    g.add_argument("--quant", default="none", help="weight/activation quantization (e.g. fp8, w4a16)")
    g.add_argument("--kv-dtype", help="KV-cache dtype, e.g. fp8 (default: the compute dtype)")
    g.add_argument("--max-seqs", type=int, help="running requests per replica (vLLM max_num_seqs; default per scheduler)")
    g.add_argument("--max-batched-tokens", type=int, help="tokens per iteration (vLLM max_num_batched_tokens)")
    g.add_argument("--chunked", action=argparse.BooleanOptionalAction, default=None,
                   help="chunked prefill (Sarathi-Serve); --no-chunked: whole prompts (vllm turns chunking on above "
                        "32K-token contexts, as vLLM v0 does)")
    g.add_argument("--priority", choices=["prefill", "decode"], help="fill iterations with prefills or decodes first")
    g.add_argument("--preemption", choices=["recompute", "swap"], help="when KV runs out (default recompute)")
    g.add_argument("--prefix-caching", action="store_true", help="keep shared prefixes' KV (radix tree, LRU)")
    g.add_argument("--block-size", type=int, help="KV block size in tokens (default: the --profile stack's page size, "
                                                "trtllm 64, sglang 1; else 16, vLLM's)")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.90, help="fraction of device memory (default 0.90)")
    g.add_argument("--max-model-len", type=int, help="max context per request (default: the model's)")
    g.add_argument("--kv-blocks", type=int, help="override the KV capacity per replica, in blocks")
    g.add_argument("--device-memory-gib", type=float, help="override the device memory (GiB) the KV sizing starts from")
    g.add_argument("--batch-timeout", type=float, help="static scheduler: seconds to wait for a full batch")
    g.add_argument("--power-cap", type=float, metavar="W", help="power cap per device in watts (default: its TDP)")
    g.add_argument("--moe-routing", choices=("uniform", "even"), default="uniform",
                   help="MoE models: tokens pick their experts uniformly at random (default; a step of T tokens "
                        "touches E(1-(1-k/E)^T) experts) or spread evenly over them (the traced step's rule)")
    d = p.add_argument_group("prefill/decode disaggregation")
    d.add_argument("--prefill-replicas", type=int, help="replicas that only prefill (with --decode-replicas)")
    d.add_argument("--decode-replicas", type=int, help="replicas that only decode")
    d.add_argument("--decode-system", help="system of the decode replicas (default --system)")
    d.add_argument("--decode-mapping", help="mapping of the decode replicas (default --mapping)")
    d.add_argument("--decode-scheduler", help="scheduler of the decode replicas (default --scheduler)")
    d.add_argument("--kv-link-gbps", type=float, help="GB/s per replica for KV transfers between the pools "
                   "(default: NVLink within one system preset, 50 GB/s per GPU between systems)")


def add_request_args(p):
    g = p.add_argument_group("requests")
    g.add_argument("--dataset", help="length source: sharegpt, lmsys-chat, arxiv, bwb, alpaca, azure-conv, "
                   "azure-code, mooncake-conv, sharegpt-turns, or fixed:I:O, uniform:..., lognormal:...")
    g.add_argument("--trace", help="trace file or built-in trace (azure-conv-2023, azure-code-2023, mooncake-conv; "
                                      "azure-conv-2024, azure-code-2024: week-long, a downloaded copy, docs/serving.md)")
    g.add_argument("--input-len", help="fixed prompt length (comma list with --static)")
    g.add_argument("--output-len", help="fixed output length (comma list with --static)")
    g.add_argument("--rate", type=float, help="requests per second (a trace with times replays them without --rate)")
    g.add_argument("--requests", type=int, default=1000, help="number of requests (default 1000)")
    g.add_argument("--max-requests", type=int, help="keep the first N requests of a trace")
    g.add_argument("--arrival", choices=["poisson", "gamma", "fixed", "burst"], help="arrival process (default poisson)")
    g.add_argument("--cv", type=float, help="gamma arrivals: coefficient of variation of the gaps (default 1)")
    g.add_argument("--system-prompt", type=int, help="tokens of a system prompt shared by requests")
    g.add_argument("--system-prompts", type=int, help="how many distinct system prompts (default 1)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same results)")


def register(sub):
    p = command(sub, "serve", "simulate serving requests over time (batching, KV cache, replicas)",
                "Simulate an inference server: requests arrive, schedulers batch them iteration by iteration "
                "on replicas whose step times, power and energy come from hwsim's cost models.", EXAMPLES)
    add_deployment_args(p)
    add_request_args(p)
    o = p.add_argument_group("output")
    o.add_argument("--slo", help="SLOs in seconds, e.g. ttft_p99=1.0,tpot_p99=0.05 (ttft/tpot/e2e/itl, _p50/_p90/_p99)")
    o.add_argument("--find-max-rate", action="store_true", help="bisect the highest rate that meets --slo")
    o.add_argument("--static", action="store_true", help="generate-style table: --batch x --input-len x --output-len")
    o.add_argument("--batch", help="with --static: batch sizes, e.g. 1,8,64")
    o.add_argument("--out", metavar="DIR", help="write requests/timeline (Parquet), summary.json, trace.json, report.html")
    o.add_argument("--format", choices=["parquet", "csv"], help="table format in --out (default parquet)")
    o.add_argument("--progress", action="store_true", help="progress bar (on by default on a terminal for long runs)")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)
    q = command(sub, "plan", "cheapest deployment meeting SLOs for a workload (capacity planner)",
                "Rank deployments (system x TP x scheduler) by cost per hour for a target request rate under SLOs: "
                "each candidate's highest sustainable rate per replica comes from a rate search.", EXAMPLES)
    add_request_args(q)
    q.add_argument("--model", required=True, help="model preset or config.json path")
    q.add_argument("--systems", required=True, help="comma list of system or device presets to consider")
    q.add_argument("--tp", default="1,2,4,8", help="tensor-parallel degrees to consider (default 1,2,4,8)")
    q.add_argument("--schedulers", default="vllm,sarathi", help="schedulers to consider (default vllm,sarathi)")
    q.add_argument("--slo", required=True, help="SLOs, e.g. ttft_p99=2,tpot_p99=0.1")
    q.add_argument("--max-model-len", type=int, help="max context per request (default: the model's)")
    q.add_argument("--prefix-caching", action="store_true", help="prefix caching on every candidate")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(run=run_plan)


def _check_request_options(args, static: bool = False):
    """One line for request options that would be ignored: two request sources, or an option of another one."""
    given = [name for name, v in (("--trace", args.trace), ("--dataset", args.dataset),
                                  ("--input-len/--output-len", args.input_len or args.output_len)) if v]
    if len(given) > 1 and not static:
        raise HwsimError(f"{' and '.join(given)} each give the requests; keep one")
    stray = [(o, why) for o, v, why in (
        ("--max-requests", args.max_requests is not None and not args.trace, "keeps the first N requests of a --trace"),
        ("--arrival", args.arrival is not None and bool(args.trace), "draws arrivals, and --trace replays the "
                                                                      "trace's own (rescaled by --rate)"),
        ("--cv", args.cv is not None and args.arrival != "gamma", "shapes --arrival gamma"),
        ("--system-prompts", args.system_prompts is not None and not args.system_prompt,
         "counts the prompts of --system-prompt"),
        ("comma lists in --input-len/--output-len", not static and "," in f"{args.input_len or ''}{args.output_len or ''}",
         "are for --static (serve --static --batch B --input-len I1,I2 --output-len O)"),
    ) if v]
    if stray:
        option, why = stray[0]
        raise HwsimError(f"{option} {why}; drop it or add what it applies to")


def _requests(args, model_ctx: int, rate_needed: bool = True):
    from workloads import requests as rq
    _check_request_options(args)
    if args.seed < 0:
        raise HwsimError(f"--seed must be a whole number >= 0, got {args.seed}")
    if args.max_requests is not None and args.max_requests <= 0:
        raise HwsimError(f"--max-requests must be positive, got {args.max_requests}")
    rng = np.random.default_rng(args.seed)
    _positive("rate", args.rate)
    _positive("cv", args.cv)
    if args.requests is not None and args.requests <= 0:
        raise HwsimError(f"--requests must be positive, got {args.requests}")
    if args.trace:
        df = rq.read_trace(args.trace, limit=args.max_requests)
        if args.rate:
            from sim.serving.search import scaled
            roots = df[df.parent < 0].arrival_s
            if len(roots) > 1 and roots.max() <= roots.min():
                raise HwsimError(f"--rate rescales the arrivals of --trace {args.trace}, whose requests all arrive at "
                                 f"once; drop --rate to replay them as they are, or draw arrivals with --dataset")
            df = scaled(df, args.rate) if len(df) > 1 else df
    else:
        n = args.requests
        if args.input_len or args.output_len:
            if not (args.input_len and args.output_len):
                raise HwsimError("give both --input-len and --output-len (or a --dataset)")
            i, o = _ints(args.input_len, "input-len")[0], _ints(args.output_len, "output-len")[0]
            source = f"fixed:{i}:{o}"
        else:
            source = args.dataset or "sharegpt"
        if args.rate is None and args.arrival != "burst":
            if rate_needed:
                raise HwsimError("give --rate (requests per second), --arrival burst, or a --trace with times")
            args.rate = 1.0
        t = rq.arrivals(args.arrival or "poisson", n, args.rate or 1.0, rng, 1.0 if args.cv is None else args.cv)
        p, o = rq.lengths(source, n, rng, max_total=model_ctx)
        df = rq.frame(t, p, o)
    if args.system_prompt:
        df = rq.with_system_prompts(df, 1 if args.system_prompts is None else args.system_prompts, args.system_prompt,
                                    rng)
    return rq.validate(df)


def _pools(args):
    from sim.serving import Pool
    if not args.system:
        raise HwsimError("give --system (a system preset such as dgx-h100, or a device preset such as h100)")
    if args.replicas <= 0:
        raise HwsimError(f"--replicas must be positive, got {args.replicas}")
    for name in ("gpu_memory_utilization",):
        v = getattr(args, name)
        if not 0 < v <= 1:
            raise HwsimError(f"--gpu-memory-utilization must be in (0, 1], got {v}")
    common = dict(model=args.model, profile=args.profile, dtype=args.dtype, quant=args.quant, kv_dtype=args.kv_dtype,
                  max_seqs=args.max_seqs, max_tokens=args.max_batched_tokens, chunked=args.chunked,
                  priority=args.priority, preemption=args.preemption, batch_timeout_s=args.batch_timeout,
                  prefix_caching=args.prefix_caching, block_size=args.block_size,
                  memory_utilization=args.gpu_memory_utilization, kv_blocks=args.kv_blocks,
                  memory_gib=args.device_memory_gib, power_cap_w=args.power_cap,
                  max_context=args.max_model_len, routing=args.moe_routing)
    if (args.prefill_replicas is None) != (args.decode_replicas is None):
        raise HwsimError("disaggregation needs both --prefill-replicas and --decode-replicas")
    if args.prefill_replicas is None:
        stray = [o for o, v in (("--decode-system", args.decode_system), ("--decode-mapping", args.decode_mapping),
                                ("--decode-scheduler", args.decode_scheduler), ("--kv-link-gbps", args.kv_link_gbps))
                 if v is not None]
        if stray:
            raise HwsimError(f"{', '.join(stray)} applies to prefill/decode disaggregation; add --prefill-replicas N "
                             f"--decode-replicas M or drop {'it' if len(stray) == 1 else 'them'}")
    elif args.replicas != 1:
        raise HwsimError("with disaggregation the pools are sized by --prefill-replicas and --decode-replicas; drop "
                         "--replicas")
    for option, v in (("--prefill-replicas", args.prefill_replicas), ("--decode-replicas", args.decode_replicas)):
        if v is not None and v <= 0:
            raise HwsimError(f"{option} must be positive, got {v}")
    if args.prefill_replicas is not None:
        pre = Pool(system=args.system, mapping=args.mapping, replicas=args.prefill_replicas, scheduler=args.scheduler,
                   **common)
        dec = Pool(system=args.decode_system or args.system, mapping=args.decode_mapping or args.mapping,
                   replicas=args.decode_replicas, scheduler=args.decode_scheduler or args.scheduler, **common)
        return pre, dec
    return Pool(system=args.system, mapping=args.mapping, replicas=args.replicas, scheduler=args.scheduler,
                **common), None


def _model_ctx(args):
    from workloads.capture import load_spec
    spec = load_spec(args.model)
    return min(args.max_model_len or spec.max_positions, spec.max_positions)


def _progress(enabled, total, label):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm
    bar = tqdm(total=total, desc=label, unit="req", file=sys.stderr, leave=False, mininterval=0.5)

    def update(done):
        bar.n = done
        bar.refresh() if bar.n == total else None
    return update, bar.close


@speaks_flags(FLAGS)
def run(args):
    from sim.serving import serve
    from sim.serving.metrics import parse_slo
    from sim.serving.search import find_max_rate, static_table
    slo = parse_slo(args.slo)
    if args.batch and not args.static:
        raise HwsimError("--batch sizes the batches of --static; drop it or add --static (a serving run batches "
                         "requests itself: --max-seqs caps it)")
    if args.batch_timeout is not None and "static" not in (args.scheduler, args.decode_scheduler):
        raise HwsimError(f"--batch-timeout is the static scheduler's wait for a full batch; scheduler "
                         f"'{args.scheduler}' does not wait; drop it or add --scheduler static")
    if args.format and not args.out:
        raise HwsimError("--format is the table format of --out DIR; drop it or add --out")
    if args.static:
        _check_request_options(args, static=True)
        stray = [o for o, v in (("--find-max-rate", args.find_max_rate), ("--slo", args.slo), ("--rate", args.rate),
                                ("--trace", args.trace), ("--dataset", args.dataset),
                                ("--replicas", args.replicas != 1), ("--prefill-replicas", args.prefill_replicas),
                                ("--decode-replicas", args.decode_replicas)) if v]
        if stray:
            raise not_applicable(stray, "to --static (one replica runs each --batch x --input-len x --output-len "
                                        "batch to completion)", "drop {it}")
    if args.out:
        if args.static:
            raise HwsimError("--out writes a serving run's files; --static prints a table (save it with --json)")
        from sim.outputs import check_folder
        check_folder(args.out, "--out")      # before any work: a bad folder costs nothing
    pool, decode = _pools(args)
    inputs = {k: v for k, v in vars(args).items() if k not in ("run", "command")}
    if args.static:
        if not (args.batch and args.input_len and args.output_len):
            raise HwsimError("--static needs --batch, --input-len and --output-len (comma lists allowed)")
        df = static_table(pool, _ints(args.batch, "batch"), _ints(args.input_len, "input-len"),
                          _ints(args.output_len, "output-len"), serve)
        if args.json:
            emit_json(document("serve", inputs, static=df.to_dict(orient="records")))
            return 0
        print(f"{args.model} on {args.system} with {args.mapping}, stack {pool.profile}: static batches run to "
              f"completion")
        print(table(df.to_dict(orient="records"), [
            ("batch", "batch", ">"), ("input", "input_len", ">"), ("output", "output_len", ">"),
            ("latency s", lambda r: f"{r['latency_s']:.3f}", ">"), ("TTFT s", lambda r: f"{r['ttft_s']:.4f}", ">"),
            ("TPOT ms", lambda r: f"{r['tpot_s'] * 1e3:.2f}", ">"),
            ("output tok/s", lambda r: f"{r['output_tokens_per_s']:,.0f}", ">"),
            ("total tok/s", lambda r: f"{r['total_tokens_per_s']:,.0f}", ">"),
            ("avg W", lambda r: f"{r['avg_power_w']:.0f}", ">")]))
        return 0
    requests = _requests(args, _model_ctx(args), rate_needed=not args.find_max_rate)
    skipped = requests.attrs.get("skipped_rows") or []      # trace rows left out, each with its error
    if skipped:
        inputs["trace_rows_left_out"] = len(skipped)
    show = args.progress or (sys.stderr.isatty() and len(requests) >= 5000 and not args.json)

    def one(df):
        update, close = _progress(show, len(df), "serving")
        try:
            return serve(df, pool, router=args.router, slo=slo, decode_pool=decode, kv_link_gbps=args.kv_link_gbps,
                         progress=update, seed=args.seed)
        finally:
            close()
    sweep = None
    if args.find_max_rate:
        report = (lambda p: print(f"  rate {p['rate']:.3f}/s: TTFT p99 {p['ttft_s_p99']:.3f} s, TPOT p99 "
                                  f"{p['tpot_s_p99'] or 0:.4f} s, {'meets' if p['slo_met'] else 'misses'} the SLO",
                                  file=sys.stderr)) if not args.json else None
        best, sweep, result = find_max_rate(requests, one, slo, start=args.rate or 1.0, progress=report)
        if result is None:
            raise HwsimError(f"no rate meets the SLO {args.slo} (down to {min(p['rate'] for p in sweep):.3g}/s); "
                             f"relax it or add replicas/devices")
    else:
        result = one(requests)
    if args.out:
        from sim.serving.report import write
        paths = write(result, args.out, inputs, args.format or "parquet", sweep=sweep, skipped=skipped)
    s = result.summary
    if args.json:
        body = {"summary": s, "capacity": result.capacity}
        if sweep is not None:
            body.update(max_rate=best, sweep=sweep)
        emit_json(document("serve", inputs, **body))
        return 0
    _print_summary(args, result, pool, decode)
    if sweep is not None:
        print(f"  max rate    {best:.3f} requests/s meets {args.slo} ({len(sweep)} runs)")
    if args.out:
        print(f"  files       {', '.join(paths)}")
    return 0


def _print_summary(args, result, pool, decode):
    s = result.summary
    where = f"{pool.replicas}x {pool.mapping} on {pool.system}"
    if decode is not None:
        where = f"prefill {pool.replicas}x {pool.mapping} on {pool.system}, decode {decode.replicas}x {decode.mapping} " \
                f"on {decode.system}"
    policy = pool.policy()
    chunks = f" (chunked prefill, {policy.max_tokens} tokens)" if policy.chunked and pool.scheduler == "vllm" else ""
    print(f"{args.model} served by {where}, scheduler {pool.scheduler}{chunks}, stack {pool.profile}")
    print(f"  requests    {s['completed']} completed, {s['rejected']} rejected, over {s['duration_s']:.1f} s")
    print(f"  throughput  {s['throughput_rps']:.3f} req/s, {s['output_tokens_per_s']:,.0f} output tok/s, "
          f"{s['total_tokens_per_s']:,.0f} total tok/s")

    def row(name, key, scale=1.0, unit="s"):
        vals = [s.get(f"{key}_{st}") for st in ("mean", "p50", "p90", "p99")]
        cells = "  ".join("-" if v is None else f"{v * scale:.4g}" for v in vals)
        print(f"  {name:<11} {cells} {unit} (mean p50 p90 p99)")
    row("TTFT", "ttft_s")
    row("TPOT", "tpot_s", 1e3, "ms")
    row("ITL", "itl_s", 1e3, "ms")
    row("E2E", "e2e_s")
    row("queueing", "queue_s")
    print(f"  batch       {s.get('mean_batch_decodes', 0):.1f} decoding on average; KV used {100 * s.get('mean_kv_used_fraction', 0):.1f}% "
          f"(peak {100 * s.get('peak_kv_used_fraction', 0):.1f}%); {s['preemptions']} preemptions")
    if s.get("prefix_hit_tokens"):
        print(f"  prefix hits {100 * s['prefix_hit_rate']:.1f}% of prompt tokens from the cache")
    print(f"  power       {s['avg_power_w']:,.0f} W average over {s['devices']} devices "
          f"({s['avg_power_per_device_w']:.0f} W each); {s['energy_per_output_token_j']:.3f} J per output token")
    cap = next(iter(result.capacity.values()))
    ve = cap.get("virtual_engines", 1)
    where = f"per virtual engine (x{ve}: pp stages' batches in flight)" if ve > 1 else "per replica"
    print(f"  KV cache    {cap['tokens']:,} tokens {where} ({cap['kv_gib']:.1f} GiB per device after weights "
          f"{cap['weights_gib']:.1f}, activations {cap['activation_gib']:.2f}, overhead {cap['overhead_gib']:.2f} GiB)")
    if "slo_attainment" in s:
        checks = ", ".join(f"{k} {c['value']:.4g} {'<=' if c['met'] else '>'} {c['limit']}"
                           for k, c in s["slo_checks"].items() if c["value"] is not None)
        print(f"  SLO         {100 * s['slo_attainment']:.1f}% of requests within; goodput {s['goodput_rps']:.3f} req/s; "
              f"{'met' if s['slo_met'] else 'NOT met'}" + (f" ({checks})" if checks else ""))


@speaks_flags(FLAGS)
def run_plan(args):
    from sim.serving import Pool, serve
    from sim.serving.metrics import parse_slo
    from sim.serving.search import plan
    from sim.serving.scheduler import scheduler
    from sim.serving.step_cost import resolve_system
    slo = parse_slo(args.slo)
    if args.rate is None:
        raise HwsimError("hwsim plan needs --rate: the request rate to serve")
    _positive("rate", args.rate)
    if args.max_model_len is not None and args.max_model_len < 1:   # was every candidate's note, exit 0
        raise HwsimError(f"--max-model-len must be a whole number >= 1, got {args.max_model_len}")
    # names are checked before any search: an unknown system or scheduler is bad input, not a candidate's note
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    schedulers = [s.strip() for s in args.schedulers.split(",") if s.strip()]
    if not systems or not schedulers:
        raise HwsimError(f"--{'systems' if not systems else 'schedulers'} names none; give a comma list, e.g. "
                         f"{'dgx-h100,h100' if not systems else 'vllm,sarathi'}")
    tps = _ints(args.tp, "tp")
    for option, values in (("--systems", systems), ("--tp", tps), ("--schedulers", schedulers)):
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:                # each repeat was one more identical candidate: a duplicated row and its search
            raise HwsimError(f"{option} names {', '.join(twice)} more than once; list each once")
    for name in systems:
        resolve_system(name)
    for name in schedulers:
        scheduler(name)
    target = args.rate
    args_rate = args.rate
    requests = _requests(args, _model_ctx(args))
    args.rate = args_rate
    candidates = []
    for system in systems:
        for tp in tps:
            for sched in schedulers:
                candidates.append(Pool(model=args.model, system=system, mapping="single" if tp == 1 else f"tp:{tp}",
                                       scheduler=sched, max_context=args.max_model_len,
                                       prefix_caching=args.prefix_caching))
    report = None if args.json else (lambda r: print(f"  {r['system']} {r['mapping']} {r['scheduler']}: "
                                                     f"{r['max_rate_per_replica'] or 0:.3f} req/s per replica "
                                                     f"{r.get('note') or ''}", file=sys.stderr))
    df = plan(requests, target, slo, candidates, serve, progress=report)
    stack = candidates[0].profile if candidates else Pool.profile      # every candidate runs the default stack
    inputs = {**{k: v for k, v in vars(args).items() if k not in ("run", "command")}, "profile": stack}
    if args.json:
        emit_json(document("plan", inputs, plan=df.to_dict(orient="records")))
        return 0
    print(f"{args.model}: deployments for {target} req/s under {args.slo} (stack {stack}), cheapest first")
    print(table(df.to_dict(orient="records"), [
        ("rank", "rank", ">"), ("system", "system", "<"), ("mapping", "mapping", "<"), ("scheduler", "scheduler", "<"),
        ("req/s per replica", lambda r: "-" if r["max_rate_per_replica"] is None or r["max_rate_per_replica"] != r["max_rate_per_replica"] else f"{r['max_rate_per_replica']:.3f}", ">"),
        ("replicas", lambda r: "-" if r["replicas"] is None or r["replicas"] != r["replicas"] else f"{int(r['replicas'])}", ">"),
        ("devices", lambda r: "-" if r["devices"] is None or r["devices"] != r["devices"] else f"{int(r['devices'])}", ">"),
        ("$/hour", lambda r: "-" if r["usd_per_hour"] is None or r["usd_per_hour"] != r["usd_per_hour"] else f"{r['usd_per_hour']:.2f}", ">"),
        ("note", "note", "<")]))
    return 0
