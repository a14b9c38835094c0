"""`hwsim probe-host`: measure the host's costs (hw_models/host.py) on the machine it runs on, in at most ~10 s.

CPU-side costs are always measured (torch's dispatcher and Python on this CPU); with a CUDA GPU, kernel launches,
library calls, synchronization and CUDA-graph replays are timed on it. Each cost is the median over short batches
of calls, so a loaded machine disturbs it less; the machine's load average is recorded with the result.
With transformers installed, the per-step work of `generate()` outside the model is measured on a tiny random
model (built from a config, nothing downloaded); without it, on a stand-in sequence of the same kind of ops.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import date

BUDGET_S = 0.35          # per measured cost


def _per_call_us(fn, budget_s: float = None, batch: int = 50) -> float:
    """Median over batches of the mean time of one call, in microseconds."""
    budget_s = BUDGET_S if budget_s is None else budget_s
    fn()
    means, end = [], time.perf_counter() + budget_s
    while time.perf_counter() < end or len(means) < 5:
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        means.append((time.perf_counter() - t) / batch)
    return statistics.median(means) * 1e6


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _generate_step_us(device: str):
    """(microseconds of generate()'s own work per step, how): a tiny random Llama, per-step time minus the time of
    its forward calls, from two lengths so that fixed costs cancel."""
    import torch
    try:
        import transformers
    except ImportError:
        return None
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=256, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(cfg).to(device).eval()
    forward = model.forward
    spent = [0.0]

    def timed(*a, **k):
        t = time.perf_counter()
        out = forward(*a, **k)
        if device == "cuda":
            torch.cuda.synchronize()
        spent[0] += time.perf_counter() - t
        return out
    model.forward = timed
    ids = torch.zeros((1, 8), dtype=torch.long, device=device)
    mask = torch.ones_like(ids)

    def run(n):
        spent[0] = 0.0
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           pad_token_id=0)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t - spent[0]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(4)
        short = min(run(8) for _ in range(2))
        long = min(run(40) for _ in range(2))
    return max(0.0, (long - short) / 32 * 1e6), f"transformers {transformers.__version__} generate() on a 1-layer random Llama"


def _model_op_us(device: str, costs: dict):
    """(microseconds of model code's own work per issued kernel beyond the probed launch/library/view/module costs,
    the same per model-code Python call (transformers' functions, as the tracer counts them: attrs host_py), how):
    a tiny random Hugging Face Llama's forward (one token, no cache) issued on this GPU with 1 and 7
    layers; the six layers' host time (the GPU runs each tiny kernel faster than the host issues it) minus what
    the host model counts for the same two layers (hwsim's trace of that very module), per kernel. It is the
    model code's Python and allocation work per op, which one pre-allocated `torch.add(out=)` does not have."""
    import torch
    try:
        import transformers
    except ImportError:
        return None
    from hw_models.host import HostModel, HostSpec
    from workloads.module_trace import trace_module
    spec = HostSpec("probe", "probe", {k: v for k, (v, _) in costs.items()})
    hm = HostModel(spec)
    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    measured, modelled, kernels, calls = [], [], [], []
    import warnings
    for layers in (1, 7):
        cfg = transformers.LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=layers,
                                       num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                                       max_position_embeddings=256)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.LlamaForCausalLM(cfg).to(device=device, dtype=torch.bfloat16).eval()
            with torch.no_grad():
                graph = trace_module(model, input_ids=ids, use_cache=False, logits_to_keep=1, replay=False)
                measured.append(_per_call_us(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1),
                                             budget_s=1.0, batch=10))
        if device == "cuda":
            torch.cuda.synchronize()
        modelled.append(sum(hm.issue_s(op) * op.runs for op in graph.ops) * 1e6)
        kernels.append(sum(max(1, len(op.kernels)) * op.runs for op in graph.ops))
        calls.append(sum(op.attrs.get("host_py", 0) * op.runs for op in graph.ops))
    extra = max(0.0, (measured[1] - measured[0]) - (modelled[1] - modelled[0]))
    return extra / (kernels[1] - kernels[0]), extra / max(1, calls[1] - calls[0]), (
        f"transformers {transformers.__version__} Llama forward (hidden 256, bf16, one token) with 7 and 1 layers on "
        f"this GPU: {(measured[1] - measured[0]) / 6:.0f} us per layer issued, {(modelled[1] - modelled[0]) / 6:.0f} "
        f"us counted from launch/library/view/module costs, over {(kernels[1] - kernels[0]) // 6} kernels and "
        f"{(calls[1] - calls[0]) // 6} model-code Python calls")


def _stand_in_step_us(device: str) -> float:
    """The kind of work generate() does per step outside the model: greedy pick, append, stopping checks."""
    import torch
    logits = torch.zeros((1, 32000), device=device)
    ids = torch.zeros((1, 64), dtype=torch.long, device=device)
    unfinished = torch.ones(1, dtype=torch.long, device=device)
    eos = torch.tensor([2], device=device)

    def step():
        nxt = torch.argmax(logits, dim=-1)
        nxt = nxt * unfinished + 0 * (1 - unfinished)
        torch.cat([ids, nxt[:, None]], dim=-1)
        done = torch.isin(nxt, eos)
        u = unfinished & ~done
        bool(u.max() == 0)
    return _per_call_us(step, batch=10)


def probe(out_id: str = None, budget_s: float = BUDGET_S, generate: bool = True) -> tuple:
    """(host id, name, costs {name: (us, source key)}, sources, machine). `budget_s` per measured cost;
    `generate=False` skips the transformers generate() measurement (the stand-in is used)."""
    global BUDGET_S
    BUDGET_S = budget_s
    import torch
    from torch import nn
    torch.set_num_threads(1)
    start = time.perf_counter()
    gpu = torch.cuda.is_available()
    dev = "cuda" if gpu else "cpu"
    x = torch.empty(8, 8, device=dev)
    a, b, c = (torch.ones(1, device=dev) for _ in range(3))
    m1, m2, m3 = (torch.ones(64, 64, device=dev) for _ in range(3))

    def views():
        x.view(64)
        x.transpose(0, 1)
        x[:, :4]
    view = _per_call_us(views) / 3
    launch = _per_call_us(lambda: torch.add(a, b, out=c))
    library = _per_call_us(lambda: torch.mm(m1, m2, out=m3))

    class Nop(nn.Module):
        def forward(self, t):
            return t

    def plain(t):
        return t
    nop = Nop()
    module = max(0.0, _per_call_us(lambda: nop(a)) - _per_call_us(lambda: plain(a)))
    sources = {"cpu": f"measured here by `hwsim probe-host` on this machine's CPU ({date.today().isoformat()})"}
    costs = {"view": (view, "cpu"), "module": (module, "cpu")}
    if gpu:
        sources["gpu"] = f"measured here by `hwsim probe-host` on {torch.cuda.get_device_name(0)} ({date.today().isoformat()})"
        torch.cuda.synchronize()
        costs["launch"] = (launch, "gpu")
        costs["library"] = (library, "gpu")
        q, k = torch.ones(1, 4, 16, 64, device=dev, dtype=torch.float16), torch.ones(1, 4, 16, 64, device=dev,
                                                                                      dtype=torch.float16)
        sdpa = _per_call_us(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k))
        costs["library"] = ((library + sdpa) / 2, "gpu")
        torch.cuda.synchronize()
        costs["sync"] = (_per_call_us(lambda: a.sum().item(), batch=20), "gpu")
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                torch.add(a, b, out=c)
        torch.cuda.current_stream().wait_stream(s)
        with torch.cuda.graph(g):
            for _ in range(20):
                torch.add(a, b, out=c)
        costs["graph_launch"] = (_per_call_us(g.replay, batch=20), "gpu")
        torch.cuda.synchronize()
        sources["est_coll"] = "estimate, not probed: an NCCL collective is issued like one kernel launch"
        costs["collective"] = (costs["launch"][0], "est_coll")
    else:
        sources["nogpu"] = ("measured here by `hwsim probe-host` on this machine's CPU: no GPU here, so this is the "
                            "CPU-side dispatch of a one-element op / a 64x64 matmul (a CUDA launch adds the "
                            "driver's enqueue time on top)")
        sources["none"] = "no GPU on the probed machine: nothing to synchronize or replay (0)"
        sources["est_coll"] = "estimate, not probed: an NCCL collective is issued like one kernel launch"
        costs.update(launch=(launch, "nogpu"), library=(library, "nogpu"), sync=(0.0, "none"),
                     graph_launch=(0.0, "none"), collective=(launch, "est_coll"))
    op = _model_op_us(dev, costs) if gpu and generate else None
    if op is not None:
        sources["py_op"] = f"measured here by `hwsim probe-host`: {op[2]}"
        costs["py_op"] = (op[0], "py_op")
        costs["py_call"] = (op[1], "py_op")
    step = _generate_step_us(dev) if generate else None
    if step is not None:
        sources["step"] = f"measured here by `hwsim probe-host`: {step[1]}, per-step time minus its forward calls"
        costs["step"] = (step[0], "step")
    else:
        sources["step"] = ("measured here by `hwsim probe-host`: a stand-in for generate()'s per-step work (greedy "
                           "pick, append, stopping checks); transformers' generate() was not measured")
        costs["step"] = (_stand_in_step_us(dev), "step")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    import sys
    machine = {"date": date.today().isoformat(), "cpu": _cpu_name(), "cpus": os.cpu_count(),
               "load_average_1min": round(load, 2) if load is not None else None,
               "python": platform.python_version(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if gpu else None, "platform": sys.platform,
               "probe_seconds": round(time.perf_counter() - start, 2)}
    try:
        import transformers
        machine["transformers"] = transformers.__version__
    except ImportError:
        pass
    host_id = out_id or f"probed-{platform.node() or 'host'}"
    name = f"{machine['cpu']} ({machine['cpus']} CPUs)" + (f" with {machine['gpu']}" if gpu else ", no GPU")
    return host_id, name, costs, sources, machine
