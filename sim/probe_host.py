"""`hwsim probe-host`: measure the host's costs (hw_models/host.py) on the machine it runs on, in at most 10 s.

CPU-side costs are always measured (torch's dispatcher and Python on this CPU); with a CUDA GPU, kernel launches,
library calls, synchronization and CUDA-graph replays are timed on it. Each cost is the median over short batches
of calls, so a loaded machine disturbs it less; the machine's load average is recorded with the result.
With transformers installed, the per-step work of `generate()` outside the model is measured on a tiny random
model (built from a config, nothing downloaded); without it, on a stand-in sequence of the same kind of ops.

One wall-clock budget (DEFAULT_BUDGET_S, `--budget`) bounds the whole probe, the imports of torch and transformers
and CUDA's start included. torch's import and CUDA init run first; the CPU-side and CUDA loops (and the generate()
stand-in) then share what is left before the deadline with the transformers part (its own loops by NEED_S plus
TRANSFORMERS_RESERVE_S for its fixed work), each at most its NEED_S (scaled by budget / 10 s) and at least
MIN_BATCHES batches. transformers is imported last, in a background thread that the probe waits for only until
the deadline less AFTER_IMPORT_S (what building the tiny models, generate()'s runs and the forwards' rounds need):
where importing it is slower than that (8-9 s on a machine that keeps no bytecode), py_op and py_call are not
measured and the step is the stand-in's, and the file's `sources` and `machine.not_measured` say so. No timed loop
runs while that thread does (it holds the GIL most of the time).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from datetime import date

from hw_models.host import PROBE_VERSION

DEFAULT_BUDGET_S = 10.0  # one probe, wall clock, imports and CUDA init included
# seconds each timed loop gets at the default budget (what each had before one budget bounded the probe): the
# model forwards (py_op, a residual of two) need more than a one-op loop
NEED_S = {"view": 0.35, "launch": 0.35, "library": 0.35, "module": 0.35, "module_plain": 0.35, "sdpa": 0.35,
          "sync": 0.35, "graph_launch": 0.35, "forwards": 2.0, "step_stand_in": 0.35}
# planned beside the loops for the transformers part's fixed work (its import, building and tracing the tiny
# models, generate()'s runs) where transformers is installed and generate() is asked for: IMPORT_RATIO x the time
# torch's import took in this probe (where it was imported here; the same machine's disk, CPU and bytecode cache:
# transformers' import took 2.2-2.6x torch's on the 2-core development VM and on the lent H100), else
# TRANSFORMERS_RESERVE_S; plus AFTER_IMPORT_S. An estimate for the plan only: the import is waited for up to the
# deadline less AFTER_IMPORT_S whatever it says
TRANSFORMERS_RESERVE_S = 3.0
IMPORT_RATIO = 2.5
LOOPS_LEAST = 0.4        # the reserve is dropped where it would squeeze the loops below this part of their need
# the least time the work after transformers' import needs (build and trace the tiny Llamas, generate()'s runs, the
# forwards' MIN_ROUNDS rounds, with a GPU; generate()'s runs alone without one): the probe waits for the import
# until the deadline less this, then goes on without it
AFTER_IMPORT_S = {"gpu": 1.5, "cpu": 0.5}
MIN_ROUNDS = 9           # the forwards' interleaved rounds: at least this many
ROUND_CALLS = 1          # calls of each model per round (a shorter round is less often cut by another process)
MIN_BATCHES = 5          # every timed loop's median is over at least this many batches, whatever the budget
TAIL_S = 0.05            # kept back for the work after the last loop (py_op's counted costs, the machine facts)


class _Clock:
    """The probe's one deadline and the seconds each part took."""

    def __init__(self, budget_s: float, started: float):
        self.budget, self.started = budget_s, started
        self.deadline = started + budget_s
        self.parts: dict = {}
        self.pending = 0.0       # NEED_S of the timed loops not yet run
        self.spread: dict = {}   # loop -> p90 / p10 of its batch means: how steady the host was while probed

    @contextmanager
    def part(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t

    def plan(self, names, reserve_s: float = 0.0):
        """The timed loops still to run (and `reserve_s` of fixed work planned among them)."""
        self.pending = sum(NEED_S[n] for n in names) + reserve_s

    def share(self, name: str) -> float:
        """Seconds for timed loop `name`: its part, by NEED_S, of the time left before the deadline (less TAIL_S)
        among the loops still to run, at most its NEED_S scaled by budget / DEFAULT_BUDGET_S."""
        need = NEED_S[name]
        left = self.deadline - TAIL_S - time.perf_counter()
        share = left * need / max(self.pending, need)
        self.pending = max(0.0, self.pending - need)
        return max(0.0, min(need * self.budget / DEFAULT_BUDGET_S, share))

    def timed(self, name: str, fn, batch: int = 50, settle=None) -> float:
        """_per_call_us of `fn` for its share, which is reckoned after the warm-up call (a first call's one-off
        work, such as loading a CUDA library, is paid by the loops after it)."""
        with self.part(name):
            fn()
            means = []
            us = _per_call_us(fn, self.share(name), batch, warm_up=False, settle=settle, means=means)
            self.spread[name] = round(batch_spread(means), 3)
            return us

    def line(self) -> str:
        total = time.perf_counter() - self.started
        counted = sum(self.parts.values())
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.parts.items())
        over = f" (over budget by {total - self.budget:.2f} s)" if total > self.budget else ""
        return (f"probe-host: {total:.2f} s of a {self.budget:g} s budget{over}: {parts}, other "
                f"{max(0.0, total - counted):.2f} s")


_IMPORT: dict = {}      # this process's one background import of transformers: thread, module, seconds, error


def _import_transformers():
    """transformers with its Llama code loaded (the lazy module loads it on first use). Tests replace this with a
    slow one."""
    import transformers
    transformers.LlamaForCausalLM
    return transformers


def _start_import():
    """Start importing transformers in a daemon thread (once per process)."""
    if "thread" in _IMPORT:
        return

    def run():
        t = time.perf_counter()
        try:
            _IMPORT["module"] = _import_transformers()
        except Exception as e:          # not installed, or broken: the probe goes on without it
            _IMPORT["module"], _IMPORT["error"] = None, f"{type(e).__name__}: {e}"
        _IMPORT["seconds"] = time.perf_counter() - t
    _IMPORT["started"] = time.perf_counter()
    _IMPORT["thread"] = threading.Thread(target=run, name="hwsim-probe-import-transformers", daemon=True)
    _IMPORT["thread"].start()


def import_pending() -> bool:
    """Whether a transformers import the probe gave up waiting for is still running (the CLI then exits without
    the interpreter's shutdown, which would wait on that thread's import locks)."""
    th = _IMPORT.get("thread")
    return th is not None and th.is_alive()


def wait_for_import() -> float:
    """Wait for a transformers import an earlier probe gave up on; the seconds waited (0 if none was running)."""
    if not import_pending():
        return 0.0
    t = time.perf_counter()
    _IMPORT["thread"].join()
    return time.perf_counter() - t


def batch_spread(means) -> float:
    """p90 / p10 of a loop's batch means (nearest rank): 1.0 on a steady host. A host shared with other work (the
    lent H100 of lease12: one case's decode steps spread 1.1-2.3x where lease10's spread 1.01-1.09x) reads well
    above it, and no single cost it reports predicts model time to 10% (docs/tracing-and-host.md)."""
    xs = sorted(means)
    if len(xs) < 2 or xs[0] <= 0:
        return 1.0
    return xs[min(len(xs) - 1, int(0.9 * len(xs)))] / xs[int(0.1 * len(xs))]


STEADY_SPREAD = 1.10     # the median loop spread above which a probe calls its host unsteady


def steadiness(spread: dict) -> str:
    """'steady' or 'unsteady (median loop spread X)': the median over the probe's loops of p90 / p10 of their batch
    means, against STEADY_SPREAD."""
    med = statistics.median(spread.values())
    return "steady" if med <= STEADY_SPREAD else f"unsteady (median loop spread {med:.2f}x)"


def _per_call_us(fn, budget_s: float, batch: int = 50, min_batches: int = MIN_BATCHES, warm_up: bool = True,
                 settle=None, means=None) -> float:
    """Median over batches of the mean time of one call, in microseconds: batches for `budget_s` seconds (after one
    warm-up call), at least `min_batches` of them. `settle`, if given, runs untimed before each batch (e.g. a CUDA
    synchronize, so that calls whose GPU work outlasts their issue never wait on a full launch queue)."""
    if warm_up:
        fn()
    means = [] if means is None else means
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end or len(means) < min_batches:
        if settle is not None:
            settle()
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        means.append((time.perf_counter() - t) / batch)
    return statistics.median(means) * 1e6


def _installed(package: str):
    """`package`'s installed version without importing it (None if not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version(package)
    except (ImportError, PackageNotFoundError):
        return None


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="utf-8") as f:
            up = float(f.read().split()[0])
        return max(0.0, up - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


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


def _llamas(device: str):
    """(input ids, [(layers, model, hwsim's trace of its forward)]): the tiny random Hugging Face Llamas (hidden 256,
    bf16, 1 and 7 layers) that py_op is measured on."""
    import warnings

    import torch
    import transformers
    from workloads.module_trace import trace_module
    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    out = []
    for layers in (1, 7):
        cfg = transformers.LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=layers,
                                       num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                                       max_position_embeddings=256)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.LlamaForCausalLM(cfg).to(device=device, dtype=torch.bfloat16).eval()
            with torch.no_grad():
                graph = trace_module(model, input_ids=ids, use_cache=False, logits_to_keep=1, replay=False)
        out.append((layers, model, graph))
    return ids, out


def _forward_rounds(fns, seconds: float, calls: int = ROUND_CALLS, min_rounds: int = MIN_ROUNDS,
                    settle=None) -> list:
    """Interleaved rounds: in each, `calls` calls of every fn in `fns` (the order reversed every other round, so a
    drift falls on each alike), timed per fn, `settle()` (untimed) before each fn's calls; rounds for `seconds`, at
    least `min_rounds`. [[per-call seconds of each fn] per round]."""
    rounds, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rounds) < min_rounds:
        order = range(len(fns)) if len(rounds) % 2 == 0 else range(len(fns) - 1, -1, -1)
        row = [0.0] * len(fns)
        for i in order:
            if settle is not None:
                settle()
            t = time.perf_counter()
            for _ in range(calls):
                fns[i]()
            row[i] = (time.perf_counter() - t) / calls
        rounds.append(row)
    return rounds


def _forward_us(clock: _Clock, device: str, ids, llamas) -> tuple:
    """([us per call of the 1-layer forward, of the 7-layer forward], rounds): one token, no cache, host time (on a
    GPU the queue is drained, untimed, before each model's calls: the GPU runs these tiny kernels faster than the
    host issues them), in interleaved rounds of ROUND_CALLS calls each; each model's time is the lower quartile of
    its rounds' (a busy moment only adds time, and interleaved, a slow stretch falls on both models alike). On the
    2-core development VM under other jobs' load (and a busy process 0.6 s of every 2 s), the py_call this gives
    spread 1.08-1.16x (max/min of 6-8 probes) where the old medians of two separate 1 s loops spread 1.8-2.4x."""
    import warnings

    import torch
    fns = [(lambda m=model: m(input_ids=ids, use_cache=False, logits_to_keep=1)) for _, model, _ in llamas]
    with clock.part("forwards"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            for f in fns:
                f()
            rounds = _forward_rounds(fns, clock.share("forwards"),
                                     settle=torch.cuda.synchronize if device == "cuda" else None)
    return [t * 1e6 for t in _low_quartiles(rounds)], len(rounds)


def _low_quartiles(rounds) -> list:
    """Each column's lower quartile over `rounds` (rows of per-call seconds)."""
    return [statistics.quantiles([r[i] for r in rounds], n=4)[0] for i in range(len(rounds[0]))]


def _model_op_us(llamas, measured: list, costs: dict):
    """(microseconds of model code's own work per issued kernel beyond the probed launch/library/view/module costs,
    the same per model-code Python call (transformers' functions, as the tracer counts them: attrs host_py), how):
    a tiny random Hugging Face Llama's forward (one token, no cache) issued on this GPU with 1 and 7
    layers (`measured`, per call); the six layers' host time (the GPU runs each tiny kernel faster than the host
    issues it) minus what the host model counts for the same two layers (hwsim's trace of that very module), per
    kernel. It is the model code's Python and allocation work per op, which one pre-allocated `torch.add(out=)` does
    not have."""
    import transformers
    from hw_models.host import HostModel, HostSpec
    spec = HostSpec("probe", "probe", {k: v for k, (v, _) in costs.items()})
    hm = HostModel(spec)
    modelled, kernels, calls = [], [], []
    for _, _, graph in llamas:
        modelled.append(sum(hm.issue_s(op) * op.runs for op in graph.ops) * 1e6)
        kernels.append(sum(max(1, len(op.kernels)) * op.runs for op in graph.ops))
        calls.append(sum(op.attrs.get("host_py", 0) * op.runs for op in graph.ops))
    extra = max(0.0, (measured[1] - measured[0]) - (modelled[1] - modelled[0]))
    return extra / (kernels[1] - kernels[0]), extra / max(1, calls[1] - calls[0]), (
        f"transformers {transformers.__version__} Llama forward (hidden 256, bf16, one token) with 7 and 1 layers on "
        f"this GPU: {(measured[1] - measured[0]) / 6:.0f} us per layer issued, {(modelled[1] - modelled[0]) / 6:.0f} "
        f"us counted from launch/library/view/module costs, over {(kernels[1] - kernels[0]) // 6} kernels and "
        f"{(calls[1] - calls[0]) // 6} model-code Python calls")


def _py_reference(gpu_name: str):
    """(host id, its module cost, py_op, py_call) of the preset host whose py_op was probed with transformers on
    this kind of GPU (else the H100 lent host's, the one host preset probed that way): what a probe that could not
    time the tiny Llama scales by its own module cost. None where no preset fits."""
    from hw_models.host import PROBE_CALLS, PROBE_KERNELS, default_host, load_host
    from hw_models.presets import load_device
    candidates = []
    for key in ("h200", "h100", "a100"):
        if key in gpu_name.lower():
            try:
                candidates.append(default_host(load_device(key), "hf"))
            except Exception:   # noqa: BLE001 - a preset without a host: try the next
                pass
    try:
        candidates.append(load_host("h100-lent-host-hf"))
    except Exception:   # noqa: BLE001
        pass
    for host in candidates:
        c = host.costs_us
        if c.get("py_op") and c.get("module"):
            return host.id, c["module"], c["py_op"], c.get("py_call", c["py_op"] * PROBE_KERNELS / PROBE_CALLS)
    return None


def _stand_in_step_us(clock: _Clock, device: str) -> float:
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
    return clock.timed("step_stand_in", step, batch=10)


def probe(out_id: str = None, budget_s: float = DEFAULT_BUDGET_S, generate: bool = True, started: float = None,
          report=None) -> tuple:
    """(host id, name, costs {name: (us, source key)}, sources, machine). `budget_s`: the whole probe's wall-clock
    budget from `started` (a time.perf_counter() reading; default: now), imports and CUDA init included (the timed
    loops shrink to fit; only fixed work over it, or MIN_BATCHES batches, can overrun it); `generate=False` skips
    the transformers generate() and Llama forward measurements (the stand-in is used). `report(line)`, if given,
    gets one line saying how long each part took."""
    clock = _Clock(budget_s, time.perf_counter() if started is None else started)
    if clock.started < time.perf_counter() - 1e-3:
        clock.parts["start-up"] = time.perf_counter() - clock.started
    with clock.part("import torch"):
        import torch
        from torch import nn
    torch.set_num_threads(1)
    with clock.part("cuda init"):
        gpu = torch.cuda.is_available()
        dev = "cuda" if gpu else "cpu"
        x = torch.empty(8, 8, device=dev)
        a, b, c = (torch.ones(1, device=dev) for _ in range(3))
        m1, m2, m3 = (torch.ones(64, 64, device=dev) for _ in range(3))
        if gpu:
            torch.cuda.synchronize()
    if import_pending():
        with clock.part("earlier import"):     # an earlier probe's abandoned import: no loop runs beside it
            wait_for_import()
    tf_installed = generate and (_installed("transformers") is not None or "transformers" in sys.modules)
    loops = ["view", "launch", "library", "module", "module_plain"]
    if gpu:
        loops += ["sdpa", "sync", "graph_launch"]
    loops.append("step_stand_in")    # before the import (no loop runs beside it); used where generate() is not timed
    loops_tf = loops + (["forwards"] if gpu and tf_installed else [])
    reserve = 0.0
    if tf_installed and "transformers" not in sys.modules:
        torch_s = clock.parts.get("import torch", 0.0)
        reserve = IMPORT_RATIO * torch_s if torch_s > 0.2 else TRANSFORMERS_RESERVE_S
    if tf_installed:
        reserve += AFTER_IMPORT_S["gpu" if gpu else "cpu"]
    need = sum(NEED_S[n] for n in loops_tf)
    left = clock.deadline - time.perf_counter()
    if left * need / (need + reserve) < LOOPS_LEAST * need * budget_s / DEFAULT_BUDGET_S:
        reserve = 0.0            # the transformers part would not fit beside the loops: they keep their share
    clock.plan(loops_tf, reserve_s=reserve)
    def views():
        x.view(64)
        x.transpose(0, 1)
        x[:, :4]
    view = clock.timed("view", views) / 3
    launch = clock.timed("launch", lambda: torch.add(a, b, out=c))
    library = clock.timed("library", lambda: torch.mm(m1, m2, out=m3))

    class Nop(nn.Module):
        def forward(self, t):
            return t

    def plain(t):
        return t
    nop = Nop()
    module = max(0.0, clock.timed("module", lambda: nop(a)) - clock.timed("module_plain", lambda: plain(a)))
    sources = {"cpu": f"measured here by `hwsim probe-host` on this machine's CPU ({date.today().isoformat()})"}
    costs = {"view": (view, "cpu"), "module": (module, "cpu")}
    if gpu:
        sources["gpu"] = f"measured here by `hwsim probe-host` on {torch.cuda.get_device_name(0)} ({date.today().isoformat()})"
        torch.cuda.synchronize()
        costs["launch"] = (launch, "gpu")
        costs["library"] = (library, "gpu")
        q, k = torch.ones(1, 4, 16, 64, device=dev, dtype=torch.float16), torch.ones(1, 4, 16, 64, device=dev,
                                                                                      dtype=torch.float16)
        sdpa = clock.timed("sdpa", lambda: torch.nn.functional.scaled_dot_product_attention(q, k, k))
        costs["library"] = ((library + sdpa) / 2, "gpu")
        torch.cuda.synchronize()
        costs["sync"] = (clock.timed("sync", lambda: a.sum().item(), batch=20), "gpu")
        with clock.part("graph_launch"):
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
        # each batch starts on an empty queue: a replay's 20 kernels take the GPU longer (~20 us) than the host
        # takes to issue it, so back-to-back batches would time the GPU once the launch queue fills (21 us a
        # replay on the lent H100 in the seventh session, against 2.9-4.4 us issue time before)
        costs["graph_launch"] = (clock.timed("graph_launch", g.replay, batch=20, settle=torch.cuda.synchronize), "gpu")
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
    stand_in = _stand_in_step_us(clock, dev)
    transformers, llamas, step, not_measured = None, None, None, {}
    if tf_installed:
        _start_import()
        wait = clock.deadline - TAIL_S - AFTER_IMPORT_S["gpu" if gpu else "cpu"] * min(1.0, budget_s / DEFAULT_BUDGET_S)
        with clock.part("import transformers"):
            # at least a moment: an import of modules already loaded (a test, a second probe) returns at once
            _IMPORT["thread"].join(max(0.02, wait - time.perf_counter()))
        if import_pending():
            why = (f"importing transformers was not done after {time.perf_counter() - _IMPORT['started']:.1f} s, "
                   f"all that the {budget_s:g} s budget left it (raise --budget to measure this)")
        elif _IMPORT.get("module") is None:
            why = f"transformers could not be imported ({_IMPORT.get('error', 'not installed')})"
        else:
            transformers, why = _IMPORT["module"], None
    else:
        why = "transformers is not installed" if generate else "not asked for"
    if why:
        not_measured["generate_step"] = why + "; the step is the stand-in's"
        if gpu:
            not_measured["py_op"] = not_measured["py_call"] = why
    if not gpu:
        not_measured["py_op"] = not_measured["py_call"] = "no GPU: the tiny Llama's forwards are timed on a GPU only"
    if transformers is not None:
        if gpu:
            with clock.part("build llamas"):
                ids, llamas = _llamas(dev)
        with clock.part("step"):
            step = _generate_step_us(dev)
    if llamas:
        clock.plan(["forwards"])
        measured, rounds = _forward_us(clock, dev, ids, llamas)
        with clock.part("py_op count"):
            op = _model_op_us(llamas, measured, costs)
        sources["py_op"] = (f"measured here by `hwsim probe-host`: {op[2]} (lower quartiles of {rounds} interleaved "
                            f"rounds)")
        costs["py_op"] = (op[0], "py_op")
        costs["py_call"] = (op[1], "py_op")
    if gpu and "py_op" not in costs:
        ref = _py_reference(torch.cuda.get_device_name(0))
        if ref is not None and module > 0:
            ref_id, ref_module, ref_op, ref_call = ref
            scale = module / ref_module
            sources["est_py"] = (f"estimate, not probed: {ref_id}'s py_op / py_call (probed there with transformers) "
                                 f"x this machine's module cost over that host's ({module:.3g} / {ref_module:.3g} us)")
            costs["py_op"] = (ref_op * scale, "est_py")
            costs["py_call"] = (ref_call * scale, "est_py")
            for k in ("py_op", "py_call"):
                if k in not_measured:
                    not_measured[k] += f"; estimated from {ref_id} instead"
    if step is not None:
        sources["step"] = f"measured here by `hwsim probe-host`: {step[1]}, per-step time minus its forward calls"
        costs["step"] = (step[0], "step")
    else:
        sources["step"] = ("measured here by `hwsim probe-host`: a stand-in for generate()'s per-step work (greedy "
                           "pick, append, stopping checks); transformers' generate() was not measured")
        costs["step"] = (stand_in, "step")
    if not_measured:
        sources["not_measured"] = "; ".join(f"{k}: {v}" for k, v in not_measured.items()) + (
            "; a host file without py_op and py_call gets the host model's defaults (py_op 0, py_call from py_op)"
            if "py_op" in not_measured and "py_op" not in costs else "")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    machine = {"date": date.today().isoformat(), "cpu": _cpu_name(), "cpus": os.cpu_count(),
               "load_average_1min": round(load, 2) if load is not None else None,
               "python": platform.python_version(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if gpu else None, "platform": sys.platform,
               "probe_seconds": round(time.perf_counter() - clock.started, 2), "probe_version": PROBE_VERSION}
    version = transformers.__version__ if transformers is not None else _installed("transformers")
    if version:
        machine["transformers"] = version
    if "seconds" in _IMPORT and transformers is not None:
        machine["transformers_import_seconds"] = round(_IMPORT["seconds"], 2)
    if not_measured:
        machine["not_measured"] = list(not_measured)
    if clock.spread:
        machine["spread_p90_p10"] = dict(clock.spread)
        machine["steadiness"] = steadiness(clock.spread)
    host_id = out_id or f"probed-{platform.node() or 'host'}"
    name = f"{machine['cpu']} ({machine['cpus']} CPUs)" + (f" with {machine['gpu']}" if gpu else ", no GPU")
    if report is not None:
        why = {v: [k for k in not_measured if not_measured[k] == v] for v in not_measured.values()}
        report(clock.line() + "".join(f"; not measured: {', '.join(ks)} ({v})" for v, ks in why.items()))
    return host_id, name, costs, sources, machine


def allowed_cpus() -> list:
    """The CPUs this process may run on (every CPU where the platform cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin_cpu(cpu: int) -> None:
    """Run this process (and the processes it starts) on one CPU only: on a VM whose vCPUs run at different speeds,
    a probe describes the run it sits beside only when both run on the same vCPU."""
    from workloads.errors import HwsimError
    if not hasattr(os, "sched_setaffinity"):
        raise HwsimError(f"--cpu needs a platform that can pin a process to a CPU (Linux); {sys.platform} cannot")
    cpus = allowed_cpus()
    if cpu not in cpus:
        raise HwsimError(f"--cpu {cpu}: this process may run on CPUs {cpus[0]}-{cpus[-1]} "
                         f"({len(cpus)} of them); pick one of those")
    os.sched_setaffinity(0, {cpu})


def _call_ns(calls: int) -> float:
    def f(x):
        return x
    t = time.perf_counter_ns()
    for i in range(calls):
        f(i)
    return (time.perf_counter_ns() - t) / calls


def cpu_speeds(seconds_each: float = 0.03, calls: int = 2000, cpus=None) -> dict:
    """{cpu: ns per Python function call, the least of repeated loops} on each CPU this process may use, pinned to
    each in turn (the process's CPUs are restored after). Why: the lent GPU VMs ran one Python loop at two speeds
    1.75x apart depending on the vCPU (benchmarks/gpu/data/h100-2026-12-07-lease20-hf-generate-sidecar).
    `cpus`: those to scan (default: the process's own); the process's own CPUs are restored after."""
    if not hasattr(os, "sched_setaffinity"):
        return {}
    own = allowed_cpus()
    cpus = sorted(cpus) if cpus is not None else own
    out = {}
    try:
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            _call_ns(calls)                        # the move itself and a cold cache
            end, best = time.perf_counter() + seconds_each, float("inf")
            while True:
                best = min(best, _call_ns(calls))
                if time.perf_counter() >= end:
                    break
            out[cpu] = round(best, 2)
    finally:
        os.sched_setaffinity(0, set(own))
    return out
