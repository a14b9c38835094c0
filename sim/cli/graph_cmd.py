"""`hwsim graph`: the traced operator graph of one step as a table or JSON."""
from __future__ import annotations

from workloads.errors import HwsimError

from .output import check_writable, command, document, emit_json, human, table
from .workload_args import add_workload_args, workload_from_args, workload_inputs

EXAMPLES = """examples:
  hwsim graph --model llama-3.1-8b --phase prefill --batch 1 --seq-len 2048
  hwsim graph --model llama-3.1-70b --phase decode --batch 64 --seq-len 4096 --quant w4a16 --by layer
  hwsim graph --model mixtral-8x7b --phase decode --batch 8 --seq-len 1024 --json > step.json
  hwsim graph --model ./my-model/config.json --phase chunked_prefill --seq-len 512 --context 3584

Counts: one row per operator of a decoder-layer kind ('count' layers share it) plus the ops
outside the layers. Bytes are what a fused kernel moves, split into weights, activations
and KV cache; 'unfused' totals what eager PyTorch's separate kernels move.
"""


def register(sub):
    p = command(sub, "graph", "trace one step of a model and report FLOPs and bytes per op",
                "Trace one forward step (prefill, decode or a prefill chunk) from PyTorch and "
                                   "report FLOPs, bytes by class and arithmetic intensity per operator.", EXAMPLES)
    add_workload_args(p)
    out = p.add_argument_group("output")
    out.add_argument("--by", choices=["op", "layer", "kind"], default="op", help="table rows: per op, layer group or op kind")
    out.add_argument("--json", action="store_true", help="print one JSON object (totals + per-op rows)")
    out.add_argument("--out", metavar="FILE", help="write the JSON to FILE instead of stdout")
    p.set_defaults(run=run)


def _aggregate(graph, key) -> list:
    rows: dict = {}
    for op in graph.ops:
        k = key(op)
        r = rows.setdefault(k, {"name": k, "count": 0, "flops": 0, "weight_bytes": 0, "activation_bytes": 0,
                                "kv_cache_bytes": 0})
        r["count"] += op.repeat
        r["flops"] += op.flops * op.repeat
        for c in ("weight", "activation", "kv_cache"):
            r[f"{c}_bytes"] += op.bytes.get(c, 0) * op.repeat
    for r in rows.values():
        total = r["weight_bytes"] + r["activation_bytes"] + r["kv_cache_bytes"]
        r["intensity"] = round(r["flops"] / total, 3) if total else None
    return list(rows.values())


def _group_name(graph, op) -> str:
    if op.group is None:
        return "outside layers"
    from workloads.graph import _span
    return f"layers {_span(graph.layer_groups[op.group])}"


def run(args):
    if args.by != "op" and (args.json or args.out):
        raise HwsimError(f"--by {args.by} shapes the table; the JSON of --json/--out holds every op (with its layers "
                         f"and kind to group by): drop --by or the JSON options")
    if args.out:
        check_writable(args.out, "--out")          # before tracing: a bad path costs nothing
    graph = workload_from_args(args)
    totals = graph.totals()
    if args.json or args.out:
        emit_json(document("graph", workload_inputs(args), meta=graph.meta, totals=totals, ops=graph.rows()), args.out)
        return 0
    if args.by == "op":
        rows = graph.rows()
        first = [("op", "name", "<"), ("kind", "kind", "<"), ("layers", "layers", "<"), ("count", "count", ">")]
    elif args.by == "layer":
        rows = _aggregate(graph, lambda op: _group_name(graph, op))
        first = [("layer group", "name", "<"), ("ops", "count", ">")]
    else:
        rows = _aggregate(graph, lambda op: op.kind)
        first = [("kind", "name", "<"), ("ops", "count", ">")]
    print(table(rows, first + [
        ("FLOPs", lambda r: human(r["flops"]), ">"), ("weights", lambda r: human(r["weight_bytes"], "B"), ">"),
        ("activations", lambda r: human(r["activation_bytes"], "B"), ">"),
        ("KV cache", lambda r: human(r["kv_cache_bytes"], "B"), ">"),
        ("FLOP/B", lambda r: "-" if r["intensity"] is None else f"{r['intensity']:.1f}", ">"),
    ]))
    m = graph.meta
    print(f"\n{m['model']} {m['phase']}: batch {m['batch']}, {m['new_tokens']} new token(s) per sequence after "
          f"{m['context']} cached; dtype {m['dtype']}, weights {m['weight_dtype']}, KV {m['kv_dtype']}")
    print(f"params {human(totals['params'])} ({human(totals['weight_storage_bytes'], 'B')} of weights), "
          f"KV cache {human(totals['kv_bytes_per_token'], 'B')}/token ({human(totals['kv_cache_storage_bytes'], 'B')} held)")
    print(f"step: {human(totals['flops'])}FLOP, bytes {human(totals['total_bytes'], 'B')} "
          f"(weights {human(totals['weight_bytes'], 'B')}, activations {human(totals['activation_bytes'], 'B')}, "
          f"KV {human(totals['kv_cache_bytes'], 'B')}; unfused kernels {human(totals['unfused_bytes'], 'B')}), "
          f"intensity {totals['flops'] / max(totals['total_bytes'], 1):.1f} FLOP/B, {totals['kernels']} eager kernels")
    return 0
