"""Shared pieces of the multi-process GPU scripts (measure_collectives.py, measure_tp_steps.py): starting the
process group, one GPU's NVML energy counter per rank, timers, the environment record and CSV output.

Self-contained: torch and the Python standard library (NVML through ctypes, no pynvml).

Launch: under `torchrun --nproc-per-node N` (RANK/WORLD_SIZE/LOCAL_RANK in the environment), or with `--spawn N`
(torch.multiprocessing: fork for gloo on the CPU, so the children need not import torch again; spawn for NCCL),
or as a single process (world size 1).

Environment: these scripts never set, unset or override NCCL_* (NCCL_NVLS_ENABLE included), NVSHMEM_* or
TORCH_SYMM_MEM_* variables and call no multicast API (no symmetric memory, no NVLS): the lent device machines
set NVLink multicast off in their environment and the measurements take that setting as it is. The variables
are only read, into env.json.
"""
from __future__ import annotations

import csv
import ctypes
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import time
from datetime import timedelta

import torch
import torch.distributed as dist

RECORDED_ENV_PREFIXES = ("NCCL_", "NVSHMEM_", "TORCH_SYMM_MEM_", "TORCH_NCCL_", "CUDA_VISIBLE_DEVICES",
                         "CUDA_DEVICE_MAX_CONNECTIONS")


class NVML:
    """Energy counter, power and SM clock of one GPU through libnvidia-ml (found by UUID, else PCI bus id,
    else the CUDA index, so CUDA_VISIBLE_DEVICES reorderings do not mix GPUs up)."""

    def __init__(self, cuda_index: int):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        if self.lib.nvmlInit_v2() != 0:
            raise RuntimeError("nvmlInit failed")
        self.handle = ctypes.c_void_p()
        props = torch.cuda.get_device_properties(cuda_index)
        found = False
        uuid = getattr(props, "uuid", None)
        if uuid is not None:
            text = str(uuid)
            text = text if text.startswith("GPU-") else "GPU-" + text
            found = self.lib.nvmlDeviceGetHandleByUUID(text.encode(), ctypes.byref(self.handle)) == 0
        if not found and hasattr(props, "pci_bus_id"):
            bus = f"{getattr(props, 'pci_domain_id', 0):08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
            found = self.lib.nvmlDeviceGetHandleByPciBusId_v2(bus.encode(), ctypes.byref(self.handle)) == 0
        if not found and self.lib.nvmlDeviceGetHandleByIndex_v2(cuda_index, ctypes.byref(self.handle)) != 0:
            raise RuntimeError(f"no NVML handle for CUDA device {cuda_index}")

    def energy_j(self):
        """Total energy since the driver loaded (J), or None. NVML's power reading is a ~1 s moving average on
        Hopper, so a mean over a short window must come from this counter."""
        mj = ctypes.c_ulonglong()
        if self.lib.nvmlDeviceGetTotalEnergyConsumption(self.handle, ctypes.byref(mj)) != 0:
            return None
        return mj.value / 1000.0

    def power_w(self):
        mw = ctypes.c_uint()
        return mw.value / 1000.0 if self.lib.nvmlDeviceGetPowerUsage(self.handle, ctypes.byref(mw)) == 0 else None

    def sm_mhz(self):
        mhz = ctypes.c_uint()
        return float(mhz.value) if self.lib.nvmlDeviceGetClockInfo(self.handle, 1, ctypes.byref(mhz)) == 0 else None

    def driver(self) -> str:
        buf = ctypes.create_string_buffer(96)
        return buf.value.decode() if self.lib.nvmlSystemGetDriverVersion(buf, 96) == 0 else ""

    def power_limit_w(self):
        mw = ctypes.c_uint()
        ok = self.lib.nvmlDeviceGetEnforcedPowerLimit(self.handle, ctypes.byref(mw)) == 0
        return mw.value / 1000.0 if ok else None


class Ctx:
    """One rank: its backend, rank, world size, torch device and (on a GPU) its NVML handle."""

    def __init__(self, backend: str, rank: int, world: int, local: int):
        self.backend, self.rank, self.world, self.local = backend, rank, world, local
        self.gpu = backend == "nccl"
        self.device = torch.device("cuda", local) if self.gpu else torch.device("cpu")
        self.nvml = None
        if self.gpu:
            try:
                self.nvml = NVML(local)
            except Exception as exc:   # noqa: BLE001 - no NVML: timings stay valid, power stays empty
                print(f"rank {rank}: NVML unavailable ({exc})", flush=True)

    def sync(self):
        if self.gpu:
            torch.cuda.synchronize(self.device)

    def energy_j(self):
        return self.nvml.energy_j() if self.nvml else None

    def timer(self):
        return GpuTimer() if self.gpu else CpuTimer()

    def gather(self, obj):
        """obj from every rank, in rank order (on every rank)."""
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank (so that all ranks run the same cases)."""
        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])


class GpuTimer:
    def __init__(self):
        self.a, self.b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def start(self):
        self.a.record()

    def stop(self) -> float:
        self.b.record()
        self.b.synchronize()
        return self.a.elapsed_time(self.b) / 1e3


class CpuTimer:
    def start(self):
        self.t = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self.t


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _init(backend: str, rank: int, world: int, local: int, init_method: str, timeout_s: float) -> Ctx:
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise SystemExit("backend nccl needs CUDA GPUs; use --backend gloo to check the script on the CPU")
        if world > torch.cuda.device_count():
            raise SystemExit(f"world size {world} > {torch.cuda.device_count()} visible GPUs: NCCL takes one "
                             f"process per GPU")
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", init_method=init_method, rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s), device_id=torch.device("cuda", local))
    else:
        torch.set_num_threads(1)
        dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s))
    return Ctx(backend, rank, world, local)


def _spawned(index, fn, args, backend, world, init_method, timeout_s):
    ctx = _init(backend, index, world, index, init_method, timeout_s)
    try:
        fn(ctx, args)
    finally:
        dist.destroy_process_group()


def launch(fn, args, backend: str, spawn: int = 0, timeout_s: float = 600.0):
    """Run fn(ctx, args) on every rank: under torchrun, as `spawn` forked/spawned processes, or as one process."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:          # torchrun
        ctx = _init(backend, int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                    int(os.environ.get("LOCAL_RANK", 0)), "env://", timeout_s)
        try:
            fn(ctx, args)
        finally:
            dist.destroy_process_group()
        return
    world = max(1, spawn)
    init_method = f"tcp://127.0.0.1:{free_port()}"
    if world == 1:
        _spawned(0, fn, args, backend, 1, init_method, timeout_s)
        return
    import torch.multiprocessing as mp
    mp.start_processes(_spawned, args=(fn, args, backend, world, init_method, timeout_s), nprocs=world,
                       start_method="fork" if backend == "gloo" else "spawn")


def environment(ctx: Ctx, out: str, script: str, extra: dict, name: str = "env.json") -> dict:
    """Host, GPUs (one entry per rank), driver, NCCL and the communication variables as found; rank 0 writes it.
    Collective: every rank must call it."""
    mine = {"rank": ctx.rank, "host": socket.gethostname()}
    if ctx.gpu:
        props = torch.cuda.get_device_properties(ctx.local)
        mine.update(device=props.name, cuda_index=ctx.local, uuid=str(getattr(props, "uuid", "")),
                    memory_bytes=props.total_memory, sms=props.multi_processor_count)
        if ctx.nvml:
            mine.update(power_limit_w=ctx.nvml.power_limit_w(), idle_power_w=ctx.nvml.power_w(),
                        sm_mhz=ctx.nvml.sm_mhz())
    ranks = ctx.gather(mine)
    if ctx.rank != 0:
        return {}
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except Exception:   # noqa: BLE001
        pass
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "script": script,
           "backend": ctx.backend, "world_size": ctx.world, "gpu": ctx.gpu,
           "device": ranks[0].get("device", "cpu (gloo)"), "ranks": ranks,
           "hostname": socket.gethostname(), "cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
           "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "comm_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(RECORDED_ENV_PREFIXES)}}
    if not ctx.gpu:
        env["not_gpu_data"] = "gloo on the CPU: a check of the script, not a measurement of any GPU or link"
    if ctx.gpu:
        try:
            env["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
        except Exception as exc:   # noqa: BLE001
            env["nccl"] = f"unknown: {exc}"
        if ctx.nvml:
            env["driver"] = ctx.nvml.driver()
        for key, cmd in (("nvidia_smi_topo", ["nvidia-smi", "topo", "-m"]),
                         ("nvidia_smi_nvlink", ["nvidia-smi", "nvlink", "--status", "-i", "0"])):
            try:
                env[key] = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
            except Exception as exc:   # noqa: BLE001
                env[key] = f"unavailable: {exc}"
    env.update(extra)
    with open(os.path.join(out, name), "w") as f:
        json.dump(env, f, indent=2)
    return env


class Writer:
    """A CSV under out, flushed row by row (a run stopped by its time limit keeps what it measured)."""

    def __init__(self, out: str, name: str, fields):
        self.f = open(os.path.join(out, name), "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields)
        self.w.writeheader()
        self.f.flush()

    def row(self, **r):
        self.w.writerow(r)
        self.f.flush()

    def close(self):
        self.f.close()


def power_summary(per_rank):
    """(mean W over GPUs, 'W0;W1;...') from each rank's (energy J, window s), or blanks without a counter or
    with a window too short for it (< 50 ms)."""
    watts = [e / w if e is not None and w and w >= 0.05 else None for e, w in per_rank]
    if not watts or any(w is None for w in watts):
        return "", ""
    return f"{statistics.mean(watts):.1f}", ";".join(f"{w:.1f}" for w in watts)


def capture_graph(ctx, fn, times: int = 1):
    """A CUDA graph of `fn` called `times` times (after one call on a side stream, as torch's graph capture
    requires for lazily initialised state such as NCCL communicators); returns the graph's replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    ctx.sync()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(times):
            fn()
    return g.replay
