"""Ground truth for `--impl hf --profile hf-generate` (issue 18): Hugging Face generate() timed step by step on a GPU.

Run on a lent H200 and H100 on 2026-12-06 (benchmarks/gpu/data/*-2026-12-06-hf-*), then changed to read power
without a sampling thread; the version that sampled in a thread is what those data sets used (their READMEs).

Self-contained: torch, transformers and the Python standard library only (NVML through ctypes). For each
config.json (random bf16 weights, built from the config: nothing is downloaded), batch and prompt length:
- generate(): greedy, `--new-tokens` tokens (min = max, so no early stop), sdpa attention, transformers' default
  experts implementation; a StoppingCriteria records a timestamp after every step (it synchronizes first, which
  generate()'s own stopping check does anyway), so the first interval is the prefill step and the rest are decode
  steps (time per output token);
- one plain prefill forward (`model(ids, logits_to_keep=1)`), CUDA-event timed, median of reps;
- decode power from NVML's energy counter read at the first and last decode step boundary (inside the stopping
  criterion, no sampling thread: a 5 ms sampling thread slowed host-bound steps), SM clock read at each boundary.
Before the first and after the last case it runs `hwsim probe-host` (if the hwsim checkout is importable) into
the output folder, so each data set carries the host it was measured on.
On the lent machines hwsim's own imports need PyYAML and pydantic (with pydantic-core, annotated-types,
typing-inspection), which their image lacks: carry those wheels (the device tool's README shows how), or the
probe is skipped with one line and the data set has no host file (as on 2026-12-06).

Writes OUT/generate.csv (one row per case), OUT/steps.jsonl (every step's duration), OUT/env.json, and
OUT/host-before.yaml / host-after.yaml.
--inrun-probe adds, for every case, what the host was doing while it ran (the lent machines are shared VMs whose
host-bound steps slowed 0.9-2.4x between leases while a probe before and after saw nothing): the CPU time the
process spent over the decode steps (time.process_time), the hypervisor's steal time and the load average over
them (/proc/stat, /proc/loadavg), and a short in-process `hwsim probe-host` right after the case's generate()
(~1 s, 40 ms per cost, torch's thread count restored after it) into OUT/inrun-probes.jsonl.
--settle S measures decode energy by conservation instead of from counter readings at the decode boundaries: the
energy counter read at the first decode step still carries the preceding prefill on the lent machines (decode
"power" of 862 W on a 700 W board after a 2 s prefill at the cap), so each case also runs with the GPU idle for S
seconds before and after the work: the idle power over an idle window of S, then the energy of a prefill-only
generate() (one new token) and of the full generate(), each read S seconds after its last kernel and less the idle
power over that tail; decode energy = full - prefill-only, decode power = that over the decode steps' time
(columns settled_prefill_j, settled_generate_j, settled_idle_w, settled_decode_power_w).

usage (from the hwsim checkout, on the GPU machine):
  python3 benchmarks/gpu/measure_hf_generate.py --out benchmarks/gpu/data/hf-generate-h100-DATE \\
      --configs workloads/zoo/llama-3.1-8b.json,workloads/zoo/mistral-7b.json,workloads/zoo/qwen2.5-7b.json,\\
workloads/zoo/falcon-7b.json,workloads/zoo/phi-3-mini.json,workloads/zoo/gemma-2-9b.json,workloads/zoo/qwen3-14b.json,\\
workloads/zoo/mixtral-8x7b.json:8,workloads/zoo/qwen1.5-moe-a2.7b.json,workloads/zoo/deepseek-v2-lite.json,\\
workloads/zoo/gpt-neox-20b.json:16,workloads/zoo/opt-6.7b.json \\
      --batches 1,8,32 --prompts 128,512,2048,4096 --new-tokens 64
  (a ":N" after a config keeps its first N layers, for models that do not fit)
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time


class NVML:
    """Power (W) and SM clock (MHz) of GPU 0 through libnvidia-ml (no pynvml needed)."""

    def __init__(self, index: int = 0):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2() != 0:
            raise RuntimeError("nvmlInit failed")
        self.handle = ctypes.c_void_p()
        if self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(self.handle)) != 0:
            raise RuntimeError("no NVML handle")

    def power_w(self) -> float:
        mw = ctypes.c_uint()
        self.lib.nvmlDeviceGetPowerUsage(self.handle, ctypes.byref(mw))
        return mw.value / 1000.0

    def energy_j(self):
        """Total energy since the driver loaded (J), or None. NVML's power reading is a ~1 s moving average on
        Hopper, so a mean over a short window must come from this counter, not from power samples."""
        mj = ctypes.c_ulonglong()
        if self.lib.nvmlDeviceGetTotalEnergyConsumption(self.handle, ctypes.byref(mj)) != 0:
            return None
        return mj.value / 1000.0

    def sm_mhz(self) -> float:
        mhz = ctypes.c_uint()
        self.lib.nvmlDeviceGetClockInfo(self.handle, 1, ctypes.byref(mhz))      # NVML_CLOCK_SM = 1
        return float(mhz.value)


class Sampler(threading.Thread):
    """A 5 ms NVML sampling thread. NOT used by measure(): on the lent machines (2026-12-06) it slowed generate()'s
    host-bound decode steps by up to 2.4x in some runs (llama-3.1-8b 1x512 on an H100: 99 ms per token with it,
    35-40 ms without; benchmarks/gpu/data/h100-2026-12-06-hf-sampler-artifact). Kept for hf_step_regimes.py, which
    measures that effect."""
    def __init__(self, nvml, period_s=0.005):
        super().__init__(daemon=True)
        self.nvml, self.period, self.samples, self.stop = nvml, period_s, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.perf_counter(), self.nvml.power_w(), self.nvml.sm_mhz(), self.nvml.energy_j()))
            time.sleep(self.period)

    def mean(self, start, end):
        """(mean power W, mean SM clock MHz) over [start, end]: power from the energy counter's difference between
        the samples nearest the window's ends (the power samples' mean where there is no counter)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            return None, None
        first, last = inside[0], inside[-1]
        if first[3] is not None and last[3] is not None and last[0] - first[0] > 0.05:
            power = (last[3] - first[3]) / (last[0] - first[0])
        else:
            power = statistics.mean(s[1] for s in inside)
        return power, statistics.mean(s[2] for s in inside)


DEVICE = "cuda"


def sync():
    import torch
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def build(path: str, layers: int = None):
    import torch
    import transformers
    with open(path) as f:
        cfg = {k: v for k, v in json.load(f).items() if not k.startswith("_hwsim") and k != "quantization_config"}
    if layers:
        cfg["num_hidden_layers"] = layers
        for key in ("layer_types", "mlp_only_layers"):
            if isinstance(cfg.get(key), list):
                cfg[key] = cfg[key][:layers]
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    kwargs = dict(dtype=torch.bfloat16)
    with torch.device(DEVICE):  # random weights made on the GPU: a 14B model initialised on the CPU takes minutes
        try:
            model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", **kwargs)
        except ValueError:      # no SDPA path for this architecture: HF's default (eager)
            model = transformers.AutoModelForCausalLM.from_config(config, **kwargs)
    return model.to(DEVICE).eval(), config


PROBE_BUDGET = 10.0      # seconds for each `hwsim probe-host` before and after (--probe-budget)


def mark(out: str, what: str, t0: float, t1: float, **fields):
    """One wall-clock window (time.time()) into OUT/windows.jsonl: what ran when, for a --sidecar's samples."""
    with open(os.path.join(out, "windows.jsonl"), "a") as f:
        f.write(json.dumps({"what": what, "t0": round(t0, 4), "t1": round(t1, 4), **fields}) + "\n")


def start_sidecar(out: str, cpu=None):
    """benchmarks/gpu/host_sidecar.py in its own process (on CPU `cpu` if given), sampling this host's speed into
    OUT/sidecar.csv."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "host_sidecar.py")
    return subprocess.Popen([sys.executable, script, "--out", os.path.join(out, "sidecar.csv")] +
                            (["--cpu", str(cpu)] if cpu is not None else []))


def probe_host(out: str, name: str):
    """`hwsim probe-host` from the checkout this script sits in (skipped, and said so, if it cannot run)."""
    t0 = time.time()
    try:
        _probe_host(out, name)
    finally:
        mark(out, f"probe-{name}", t0, time.time())


def _probe_host(out: str, name: str):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(out, f"host-{name}.yaml")
    try:
        proc = subprocess.run([sys.executable, "-m", "sim.cli", "probe-host", "--id", f"measured-{name}", "--out",
                               path, "--budget", str(PROBE_BUDGET), "--scan-cpus"], cwd=root, capture_output=True,
                              text=True, timeout=120)
        print(f"probe-host ({name}): {proc.stderr.strip() or proc.stdout.strip()}", flush=True)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"probe-host ({name}) did not run: {exc}", flush=True)


def cpu_counters():
    """(process CPU s, steal s, idle s, 1-min load) now: /proc/stat's aggregate steal and idle jiffies (0 where
    unreadable)."""
    steal = idle = 0.0
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        hz = os.sysconf("SC_CLK_TCK")
        idle, steal = float(fields[3]) / hz, float(fields[7]) / hz if len(fields) > 7 else 0.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return time.process_time(), steal, idle, load


def inrun_probe():
    """A short in-process host probe (sim/probe_host.py with a 1.2 s budget: each one-op loop at most 42 ms, each
    Llama forward 120 ms, all squeezed to what building the tiny models and generate() leave): {cost: us} or None."""
    import torch
    threads = torch.get_num_threads()
    try:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if root not in sys.path:
            sys.path.insert(0, root)
        from sim.probe_host import probe
        _, _, costs, _, machine = probe(budget_s=1.2, generate=True)
        return {k: round(v[0], 3) for k, v in costs.items()} | {"load_average_1min": machine.get("load_average_1min")}
    except Exception as exc:          # noqa: BLE001 - a missing import or a failed probe must not stop the run
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        torch.set_num_threads(threads)


def settled_energy(nvml, settle, work):
    """(energy of `work()` in J less idle power over the settling tail, seconds of work, idle W): the GPU idles
    `settle` s (drain), then `settle` s more to read the idle power, runs the work, and idles `settle` s before the
    counter is read again, so a lagging counter has caught up on both sides."""
    sync()
    time.sleep(settle)
    e_a, t_a = nvml.energy_j(), time.perf_counter()
    time.sleep(settle)
    e0, t0 = nvml.energy_j(), time.perf_counter()
    idle_w = (e0 - e_a) / (t0 - t_a)
    work()
    sync()
    t1 = time.perf_counter()
    time.sleep(settle)
    e1, t2 = nvml.energy_j(), time.perf_counter()
    return e1 - e0 - idle_w * (t2 - t1), t1 - t0, idle_w


SETTLE = 0.0         # --settle


def measure(model, config, batch, prompt, new_tokens, nvml, reps=5):
    import torch
    import transformers
    vocab = config.get_text_config().vocab_size if hasattr(config, "get_text_config") else config.vocab_size
    ids = torch.randint(3, max(4, vocab - 1), (batch, prompt), device=DEVICE)
    mask = torch.ones_like(ids)
    stamps, readings, counters = [], [], []

    class Stamp(transformers.StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            sync()
            stamps.append(time.perf_counter())
            if len(stamps) == 1:
                counters.append(cpu_counters())
            # NVML at the first decode boundary only (and once after generate() returns): reading it at every step
            # boundary slowed many models' decode steps from the 4th on by a fixed ~31 ms on the lent H100
            # (benchmarks/gpu/data/h100-2026-12-06-hf-generate-nvml-per-step); --nvml-every-step reproduces that
            if nvml is not None and (NVML_EVERY_STEP or len(stamps) == 1):
                readings.append((nvml.energy_j(), nvml.sm_mhz()))
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    criteria = transformers.StoppingCriteriaList([Stamp()])
    with torch.no_grad():
        model.generate(ids, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                       pad_token_id=0, stopping_criteria=criteria)          # warm-up (allocator, kernels)
        sync()
        stamps.clear()
        counters.clear()
        wall = time.time() - time.perf_counter()         # perf_counter -> wall clock, for the windows file
        start = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                       do_sample=False, pad_token_id=0, stopping_criteria=criteria)
        sync()
        end = time.perf_counter()
        counters.append(cpu_counters())
        if nvml is not None and not NVML_EVERY_STEP:
            readings.append((nvml.energy_j(), nvml.sm_mhz()))
            stamps_nvml = [stamps[0], end]
        else:
            stamps_nvml = stamps
        steps = [stamps[0] - start] + [b - a for a, b in zip(stamps, stamps[1:])]
        power = clock = None
        if len(readings) > 1 and readings[0][0] is not None and readings[-1][0] is not None:
            power = (readings[-1][0] - readings[0][0]) / (stamps_nvml[-1] - stamps_nvml[0])
            clock = statistics.mean(c for _, c in readings)
        forward = []
        for _ in range(reps):
            if DEVICE != "cuda":
                t = time.perf_counter()
                model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
                forward.append(time.perf_counter() - t)
                continue
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            model(ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
            b.record()
            b.synchronize()
            forward.append(a.elapsed_time(b) / 1e3)
    decode = steps[1:]
    settled = {}
    if SETTLE > 0 and nvml is not None and nvml.energy_j() is not None:
        with torch.no_grad():
            kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0)
            e_pre, t_pre, idle_w = settled_energy(nvml, SETTLE, lambda: model.generate(
                ids, max_new_tokens=1, min_new_tokens=1, **kw))
            e_gen, t_gen, idle2 = settled_energy(nvml, SETTLE, lambda: model.generate(
                ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw))
        dec_t = sum(decode)
        settled = {"settled_prefill_j": e_pre, "settled_generate_j": e_gen, "settled_idle_w": 0.5 * (idle_w + idle2),
                   "settled_prefill_s": t_pre, "settled_generate_s": t_gen,
                   "settled_decode_power_w": (e_gen - e_pre) / max(t_gen - t_pre, 1e-9) if dec_t > 0 else None}
    return {**settled, "prefill_step_s": steps[0], "tpot_median_s": statistics.median(decode) if decode else None,
            "tpot_mean_s": statistics.mean(decode) if decode else None, "generate_s": end - start,
            "prefill_forward_s": statistics.median(forward), "decode_power_w": power, "decode_sm_mhz": clock,
            "decode_cpu_s": counters[1][0] - counters[0][0] if len(counters) == 2 else None,
            "decode_steal_s": counters[1][1] - counters[0][1] if len(counters) == 2 else None,
            "decode_idle_s": counters[1][2] - counters[0][2] if len(counters) == 2 else None,
            "load_1min": counters[-1][3] if counters else None, "steps": steps,
            "decode_wall": (stamps[0] + wall, end + wall) if stamps else None}


T_START = time.perf_counter()
NVML_EVERY_STEP = False      # --nvml-every-step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--configs", required=True, help="comma-separated config.json paths, each optionally :LAYERS")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--prompts", default="128,512,2048,4096")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--budget", type=float, default=1e9,
                        help="seconds; no new case starts after this, so a time-limited run still ends cleanly")
    parser.add_argument("--nvml-every-step", action="store_true",
                        help="read NVML at every step boundary (the 2026-12-06 grid's way; slows decode steps)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds of GPU idle around settled energy readings (decode energy by conservation)")
    parser.add_argument("--probe-budget", type=float, default=10.0,
                        help="seconds for each probe-host before and after (a fresh machine's first import of "
                             "transformers can take longer than the default 10 s leaves it: py_call is then "
                             "estimated, not probed)")
    parser.add_argument("--inrun-probe", action="store_true",
                        help="after each case, a short in-process host probe into OUT/inrun-probes.jsonl")
    parser.add_argument("--sidecar", action="store_true",
                        help="sample the host's speed all along in a second process (host_sidecar.py) into "
                             "OUT/sidecar.csv; OUT/windows.jsonl says when each probe and each case's decode ran")
    parser.add_argument("--cpu", type=int, metavar="N",
                        help="run on CPU N only, with the probes before and after (they inherit it): a shared VM's "
                             "vCPUs ran Python at two speeds 1.75x apart (lease20), so a probe describes the run only "
                             "on the same vCPU")
    parser.add_argument("--sidecar-cpu", type=int, metavar="M", help="the sidecar's CPU (default: any)")
    parser.add_argument("--smoke", action="store_true",
                        help="check the script on the CPU (no GPU, no NVML, no probe): its output is not data")
    args = parser.parse_args()
    for name in ("cpu", "sidecar_cpu"):
        cpu = getattr(args, name)
        if cpu is not None and (not hasattr(os, "sched_getaffinity") or cpu not in os.sched_getaffinity(0)):
            print(f"--{name.replace('_', '-')} {cpu}: not a CPU this process may run on "
                  f"({sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 'needs Linux'})",
                  file=sys.stderr)
            return 2
    import torch
    import transformers
    global DEVICE, NVML_EVERY_STEP, SETTLE, PROBE_BUDGET
    NVML_EVERY_STEP = args.nvml_every_step
    PROBE_BUDGET = args.probe_budget
    SETTLE = args.settle
    if args.smoke:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        print("no CUDA GPU here: this script measures generate() on a GPU (--smoke checks it on the CPU)",
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    nvml = None if args.smoke else NVML()
    env = {"date": time.strftime("%Y-%m-%d"), "gpu": torch.cuda.get_device_name(0) if nvml else None,
           "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
           "python": platform.python_version(), "cpu": platform.processor(),
           "script": "benchmarks/gpu/measure_hf_generate.py", "new_tokens": args.new_tokens,
           "idle_power_w": nvml.power_w() if nvml else None, "smoke_test_not_data": bool(args.smoke)}
    with open(os.path.join(args.out, "env.json"), "w") as f:
        json.dump(env, f, indent=2)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})           # checked before anything was written
        env["pinned_cpu"] = args.cpu
        with open(os.path.join(args.out, "env.json"), "w") as f:
            json.dump(env, f, indent=2)
    sidecar = start_sidecar(args.out, args.sidecar_cpu) if args.sidecar else None
    try:
        return _run(args, nvml, torch)
    finally:
        if sidecar is not None:
            sidecar.terminate()
            sidecar.wait(timeout=10)


def _run(args, nvml, torch) -> int:
    if args.sidecar:
        time.sleep(1.0)                   # the sidecar's own start (torch import) before the probe it is read against
    if not args.smoke:
        probe_host(args.out, "before")
    fields = ["config", "layers", "model_type", "batch", "prompt", "new_tokens", "prefill_step_s", "tpot_median_s",
              "tpot_mean_s", "generate_s", "prefill_forward_s", "decode_power_w", "decode_sm_mhz", "decode_cpu_s", "decode_steal_s", "decode_idle_s", "load_1min",
              "settled_prefill_j", "settled_generate_j", "settled_idle_w", "settled_prefill_s", "settled_generate_s",
              "settled_decode_power_w", "status"]
    with open(os.path.join(args.out, "generate.csv"), "w") as csv_f, \
            open(os.path.join(args.out, "steps.jsonl"), "w") as steps_f:
        csv_f.write(",".join(fields) + "\n")
        for item in args.configs.split(","):
            path, _, layers = item.partition(":")
            layers = int(layers) if layers else None
            try:
                model, config = build(path, layers)
            except Exception as exc:           # record it and go on with the next architecture
                print(f"{path}: could not build ({type(exc).__name__}: {exc})", flush=True)
                continue
            for batch in (int(x) for x in args.batches.split(",")):
                for prompt in (int(x) for x in args.prompts.split(",")):
                    if time.perf_counter() - T_START > args.budget:
                        print(f"budget of {args.budget:.0f} s spent: skipping {path} b{batch} p{prompt}", flush=True)
                        continue
                    row = {"config": os.path.basename(path), "layers": layers or config.num_hidden_layers,
                           "model_type": config.model_type, "batch": batch, "prompt": prompt,
                           "new_tokens": args.new_tokens}
                    try:
                        r = measure(model, config, batch, prompt, args.new_tokens, nvml)
                        row.update({k: v for k, v in r.items() if k not in ("steps", "decode_wall")}, status="ok")
                        steps_f.write(json.dumps({**{k: row[k] for k in ("config", "batch", "prompt")},
                                                  "steps_s": r["steps"]}) + "\n")
                        if r.get("decode_wall"):
                            mark(args.out, "decode", *r["decode_wall"],
                                 **{k: row[k] for k in ("config", "batch", "prompt")})
                        if args.inrun_probe:
                            with open(os.path.join(args.out, "inrun-probes.jsonl"), "a") as pf:
                                pf.write(json.dumps({**{k: row[k] for k in ("config", "batch", "prompt")},
                                                     "probe": inrun_probe()}) + "\n")
                    except torch.cuda.OutOfMemoryError:
                        row["status"] = "out of memory"
                        torch.cuda.empty_cache()
                    except RuntimeError as exc:           # e.g. a prompt past the model's positions
                        row["status"] = f"error: {str(exc).splitlines()[0][:120]}".replace(",", ";")
                    csv_f.write(",".join("" if row.get(k) is None else str(row.get(k, "")) for k in fields) + "\n")
                    csv_f.flush()
                    print(row, flush=True)
            del model
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
    if not args.smoke:
        probe_host(args.out, "after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
