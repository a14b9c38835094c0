"""What Hugging Face transformers' MoE block dispatches on the host, per layer, at 1, 128 and 2048 tokens (CPU).

Why: HF's MoE prefill forwards at 128 tokens are host-bound on the lent H100s (deepseek-v2-lite 1x128: 53 ms wall,
19 ms of device time; benchmarks/gpu/data/h100-2026-12-06-lease11-moe-prefill-profile) and hwsim under-predicted
them by 20-38% while dense forwards were within ~7% (docs/tracing-and-host.md, "Ninth session"). The question this
script answers on any CPU: does the MoE block issue more aten ops, more model-code Python calls, or host-device
syncs (`.item()`, `nonzero`, `tolist`, data-dependent shapes) as the tokens (and so the experts hit) grow, and how
does that compare with a dense layer and with what hwsim's `--impl hf` trace (the meta device) records?

It builds `AutoModelForCausalLM.from_config` of a zoo config with `num_hidden_layers` cut (default 3), the default
experts implementation (`grouped_mm`) and `attn_implementation="sdpa"`, random weights, small real CPU tensors
(hidden sizes shrunk by `--shrink`, which leaves every op's count alone: experts, top-k and layer structure are
kept), and runs one prefill forward per shape into an empty DynamicCache under

- a TorchDispatchMode that records every aten op with the decoder layer and the submodule it ran in, whether it is
  a view, and whether it makes the host wait for the device (a scalar read back: `_local_scalar_dense`, `nonzero`,
  `tolist` through `_local_scalar_dense`, `unique`, `masked_select`, `repeat_interleave` without output size ...);
- sys.setprofile counting Python calls of transformers' code (as hwsim's tracer counts them: attrs `host_py`),
  outside the aten dispatch;
- optionally (`--time`) the CPU forward's wall time (median of `--reps`; on the CPU the kernels compute inline and
  torch's CPU `_grouped_mm` loops over the groups in C++, so this is not a GPU host's time).

`--hwsim` prints, beside the CPU's, the counts of hwsim's `--impl hf` trace of the full zoo model for the same phase
and shape (meta device; one instance of the repeated decoder layer and the ops outside the layers); `--ops` lists
every layer's kernels by aten name. `--op-costs` times, on the host, each op of the grouped_mm experts path at 1
and 128 tokens beside a pre-allocated torch.add(out=) (the probe's launch): on a CUDA GPU (host time, no sync inside
a round) with one torch.cuda.mem_get_info() (cudaMemGetInfo, which torch's CUDA histogram calls inside every
torch.histc; a CPU-only analysis suspected it of the MoE forwards' missing ~0.5 ms a layer, which the GPU host
profile of benchmarks/gpu/data/h100-2026-12-06-lease12-host-profile rules out: histc ~33 us a call with the
profiler's overhead, no cudaMemGetInfo among the traced runtime calls); on the CPU the ops' compute is in their
times.

What it showed (ninth session, this 2-core VM, transformers 5.17.0, torch 2.13 CPU; docs/tracing-and-host.md):
HF's MoE layer dispatches the same aten ops at 1, 128 and 2048 tokens (deepseek-v2-lite's MoE mlp 35 kernels,
qwen1.5-moe's 34), no host-device sync, no per-expert Python loop (47 model-code Python calls per layer at every
size); hwsim's trace has the same MoE ops per layer. Only the CPU's math SDPA adds mask ops at 128+ tokens.
`--op-costs` on the CPU at 1 token: 0.8-5.3 us per op against 1.1 us for torch.add(out=) (torch's CPU
`_grouped_mm`, a loop over the groups, aside).

Run (2 cores, ~30 s; transformers 5.17 first on the path, as the GPU data was measured with):
    PYTHONPATH=.:/tmp/tf517site:/tmp/tf517deps python3 benchmarks/host/moe_dispatch_count.py \
        --configs deepseek-v2-lite,qwen1.5-moe-a2.7b,llama-3.1-8b --shapes 1x1,1x128,1x2048 --hwsim [--ops]
    python3 benchmarks/host/moe_dispatch_count.py --op-costs          # CPU here; on a GPU: the host per op
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SYNC_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_consecutive",
            "unique_dim", "item", "equal", "is_nonzero", "repeat_interleave", "bincount", "histc_sync"}
SHRINK_KEYS = ("hidden_size", "intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size",
               "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "head_dim", "q_lora_rank")


def load_config(name: str, layers: int, shrink: int):
    import transformers
    raw = json.loads((ROOT / "workloads" / "zoo" / f"{name}.json").read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("_hwsim")}
    raw["num_hidden_layers"] = layers
    raw["vocab_size"] = min(raw.get("vocab_size", 32000), 1024)
    if shrink > 1:
        for k in SHRINK_KEYS:
            if isinstance(raw.get(k), int) and raw[k] > 0:
                raw[k] = max(raw[k] // shrink, 8)
        if "head_dim" not in raw and raw.get("num_attention_heads"):
            raw["head_dim"] = max(raw["hidden_size"] // raw["num_attention_heads"], 8)
    cfg = transformers.AutoConfig.for_model(raw.pop("model_type"), **raw)
    return cfg


def build(name: str, layers: int, shrink: int, dtype):
    import torch
    import transformers
    cfg = load_config(name, layers, shrink)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    return model.eval()


class Counter:
    """Per aten op: (layer, submodule path inside the layer, op name, view?, sync?)."""

    def __init__(self, model):
        self.model = model
        self.stack = ["<top>"]
        self.records = []
        self.py = collections.Counter()        # (layer, submodule) -> transformers Python calls
        self.py_funcs = collections.Counter()  # (layer, function) -> calls
        self.in_aten = 0
        self.handles = []
        for n, m in model.named_modules():
            self.handles.append(m.register_forward_pre_hook(lambda mod, a, n=n: self.stack.append(n) and None))
            self.handles.append(m.register_forward_hook(lambda mod, a, o: self.stack.pop() and None))

    def where(self):
        path = self.stack[-1]
        parts = path.split(".")
        if "layers" in parts:
            i = parts.index("layers")
            return f"L{parts[i + 1]}", ".".join(parts[i + 2:]) or "<layer>"
        return "outside", path or "<model>"

    def remove(self):
        for h in self.handles:
            h.remove()


def count_forward(model, batch: int, seq: int):
    import torch
    import transformers
    from torch.utils._python_dispatch import TorchDispatchMode

    c = Counter(model)

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            c.in_aten += 1
            try:
                out = func(*args, **(kwargs or {}))
            finally:
                c.in_aten -= 1
            name = func.overloadpacket.__name__
            tags = getattr(func, "tags", ())
            view = torch.Tag.view_copy not in tags and bool(getattr(func._schema, "is_mutable", False)) is False and \
                any(a.alias_info is not None and not a.alias_info.is_write for a in func._schema.returns if
                    a.alias_info is not None)
            # a host-device sync: a value read back (item, tolist -> _local_scalar_dense), or an output whose size
            # depends on the data (nonzero, boolean-mask indexing); `index` with integer indices is not one
            masks = any(isinstance(a, torch.Tensor) and a.dtype == torch.bool
                        for a in torch.utils._pytree.tree_leaves((args, kwargs)))
            sync = name in SYNC_OPS or torch.Tag.data_dependent_output in tags or \
                (torch.Tag.dynamic_output_shape in tags and name in ("index", "index_put_") and masks)
            c.records.append((*c.where(), name, view, sync))
            return out

    def prof(frame, event, arg):
        if event == "call" and not c.in_aten and "/transformers/" in frame.f_code.co_filename:
            layer, sub = c.where()
            c.py[(layer, sub)] += 1
            c.py_funcs[(layer, frame.f_code.co_name)] += 1

    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    cache = transformers.DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=ids[:, :1], past_key_values=transformers.DynamicCache(config=model.config),
              use_cache=True, logits_to_keep=1)     # warm: lazy imports, first-call paths
        sys.setprofile(prof)
        try:
            with Mode():
                model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        finally:
            sys.setprofile(None)
    c.remove()
    return c


def time_forward(model, batch: int, seq: int, reps: int) -> float:
    import torch
    import transformers
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    ts = []
    with torch.no_grad():
        for _ in range(reps + 1):
            cache = transformers.DynamicCache(config=model.config)
            t = time.perf_counter()
            model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            ts.append(time.perf_counter() - t)
    return statistics.median(ts[1:])


def summarize(c, layer: str):
    ops = [r for r in c.records if r[0] == layer]
    kernels = [r for r in ops if not r[3]]
    by_sub = collections.Counter()
    for r in kernels:
        top = r[1].split(".")[0]
        by_sub[top] += 1
    return {"aten": len(ops), "kernels": len(kernels), "views": len(ops) - len(kernels),
            "syncs": sorted(collections.Counter(r[2] for r in ops if r[4]).items()),
            "py": sum(v for (lay, _), v in c.py.items() if lay == layer),
            "kernels_by_sub": dict(by_sub),
            "ops": collections.Counter(r[2] for r in kernels)}


def hwsim_layer_counts(name: str, batch: int, seq: int) -> dict:
    """hwsim's `--impl hf` trace of the full zoo model (meta device) for the same phase and shape: per instance of
    each repeated decoder layer group (the ops with `group` set run `runs` times) and outside them, its kernels,
    views, model-code Python calls (attrs host_py), syncs (hw_models/host.py SYNCS) and kernels by aten name."""
    from hw_models.host import SYNCS
    from sim import api
    g = api.workload(name, "prefill", batch, seq, 0, impl="hf")
    per = collections.defaultdict(collections.Counter)
    for op in g.ops:
        d = per["outside" if op.group is None else f"group {op.group} (x{op.runs})"]
        d["kernels"] += len(op.kernels)
        d["views"] += op.attrs.get("host_views", 0)
        d["py"] += op.attrs.get("host_py", 0)
        d["syncs"] += sum(k.aten in SYNCS for k in op.kernels)
        for k in op.kernels:
            d["k:" + k.aten] += 1
    return per


def host_per_call_us(fn, n: int = 200, rounds: int = 7) -> float:
    """Host microseconds per call of `fn` (least over rounds of n calls; no device sync inside a round)."""
    import torch
    best = float("inf")
    for _ in range(rounds):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def op_costs(tokens: int = 128, experts: int = 64, top_k: int = 6, hidden: int = 16) -> dict:
    """Host microseconds per call of each op of transformers' grouped_mm experts path, at `tokens` tokens routed
    top-`top_k` over `experts` (tiny hidden size), beside the probe's pre-allocated torch.add(out=) (`launch`), on
    CUDA where there is one (host time only: the device is never waited for inside a round) else on the CPU (where
    the op's compute is inside its time: only the small sizes say anything about dispatch). On CUDA also one
    torch.cuda.mem_get_info() (cudaMemGetInfo, which torch's CUDA histogram calls inside every torch.histc)."""
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    s = tokens * top_k
    x = torch.randn(tokens, hidden, device=dev)
    logits = torch.randn(tokens, experts, device=dev)
    ids = torch.randint(0, experts, (s,), device=dev)
    w = torch.randn(s, device=dev)
    a, b, out = (torch.randn(s, hidden, device=dev) for _ in range(3))
    srt, perm = torch.sort(ids)
    hist_in = srt.int() if dev == "cuda" else srt.float()      # as transformers passes it (CPU histc takes floats)
    hist = torch.histc(hist_in, bins=experts, min=0, max=experts - 1)
    mask = (srt >= experts).unsqueeze(-1)
    inv, ar = torch.empty_like(perm), torch.arange(s, device=dev)
    wt = torch.randn(experts, 2 * hidden, hidden, device=dev, dtype=torch.bfloat16)
    offs = torch.cumsum(hist, 0, dtype=torch.int32)
    ab = a.bfloat16()
    ops = {
        "add(out=) [probe launch]": lambda: torch.add(a, b, out=out),
        "topk": lambda: torch.topk(logits, k=top_k, dim=-1, sorted=False),
        "sort": lambda: torch.sort(ids),
        "floor_divide": lambda: perm // top_k,
        "index (row gather)": lambda: x[perm // top_k],
        "index (1-D)": lambda: w[perm],
        "histc": lambda: torch.histc(hist_in, bins=experts, min=0, max=experts - 1),
        "cumsum (int32)": lambda: torch.cumsum(hist, 0, dtype=torch.int32),
        "ge": lambda: srt >= experts,
        "clamp_": lambda: srt.clamp_(max=experts - 1),
        "masked_fill_": lambda: a.masked_fill_(mask, 0.0),
        "masked_fill": lambda: a.masked_fill(mask, 0.0),
        "empty_like": lambda: torch.empty_like(perm),
        "arange": lambda: torch.arange(s, device=dev),
        "index_put_": lambda: inv.__setitem__(perm, ar),
        "sum (dim=1)": lambda: a.view(tokens, top_k, hidden).sum(dim=1),
        "_grouped_mm": lambda: torch._grouped_mm(ab, wt.transpose(-2, -1), offs=offs),
    }
    if dev == "cuda":
        ops["cuda.mem_get_info"] = torch.cuda.mem_get_info
    res = {}
    for name, fn in ops.items():
        try:
            res[name] = host_per_call_us(fn, n=200 if "grouped" not in name or dev == "cuda" else 20)
        except Exception as exc:           # an op this torch cannot run here: say so, keep the rest
            res[name] = f"{type(exc).__name__}"
    return {"device": dev, "tokens": tokens, "us": res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="deepseek-v2-lite,qwen1.5-moe-a2.7b,llama-3.1-8b")
    ap.add_argument("--shapes", default="1x1,1x128,1x2048")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--shrink", type=int, default=8, help="divide hidden sizes by this (op counts unchanged)")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--time", action="store_true", help="also time forwards (median of --reps)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ops", action="store_true", help="print every layer's kernels by aten name")
    ap.add_argument("--hwsim", action="store_true", help="also print hwsim's --impl hf trace's per-layer counts")
    ap.add_argument("--op-costs", action="store_true",
                    help="time the host cost of each op of the grouped_mm experts path at 1 and 128 tokens (CUDA "
                         "where there is one, with torch.cuda.mem_get_info; else the CPU), then exit")
    args = ap.parse_args(argv)
    import torch
    if args.op_costs:
        torch.set_num_threads(1)
        for tokens in (1, 128):
            r = op_costs(tokens)
            base = r["us"]["add(out=) [probe launch]"]
            print(f"host us per call, {r['device']}, {tokens} tokens x top-6 of 64 experts:")
            for name, v in r["us"].items():
                print(f"   {name:26s} " + (f"{v:8.2f}  x{v / base:5.1f}" if isinstance(v, float) else v))
        return 0
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    for name in args.configs.split(","):
        model = build(name, args.layers, args.shrink, dtype)
        print(f"== {name}: {args.layers} layers, hidden sizes /{args.shrink}, {args.dtype}, experts "
              f"{getattr(model.config, '_experts_implementation', None)}")
        for b, s in shapes:
            c = count_forward(model, b, s)
            layers = sorted({r[0] for r in c.records if r[0] != "outside"}, key=lambda x: int(x[1:]))
            out = summarize(c, "outside")
            print(f"  {b}x{s}: outside layers: kernels {out['kernels']} views {out['views']} py {out['py']} "
                  f"syncs {out['syncs']}")
            for lay in layers:
                d = summarize(c, lay)
                print(f"  {b}x{s} {lay}: kernels {d['kernels']} views {d['views']} py {d['py']} syncs {d['syncs']} "
                      f"by submodule {d['kernels_by_sub']}")
                if args.ops:
                    print("      " + ", ".join(f"{k} {v}" for k, v in sorted(d["ops"].items())))
                    top = sorted(((v, f) for (l2, f), v in c.py_funcs.items() if l2 == lay), reverse=True)[:12]
                    print("      py: " + ", ".join(f"{f} {v}" for v, f in top))
            if args.hwsim:
                for part, d in sorted(hwsim_layer_counts(name, b, s).items()):
                    print(f"  {b}x{s} hwsim trace (full model), {part}: kernels {d['kernels']} views {d['views']} "
                          f"py {d['py']} syncs {d['syncs']}")
                    if args.ops:
                        print("      " + ", ".join(f"{k[2:]} {v}" for k, v in sorted(d.items()) if k.startswith("k:")))
            if args.time:
                t = time_forward(model, b, s, args.reps)
                print(f"  {b}x{s}: forward {t * 1e3:.2f} ms (median of {args.reps}, 1 thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
