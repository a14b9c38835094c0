"""py_call's spread under a busy moment: `hwsim probe-host`'s residual from the tiny Llama's 1- and 7-layer
forwards, timed the old way (each model's median over batches of 10, two separate 1 s loops) and the probe's way
(sim/probe_host.py `_forward_us`: interleaved rounds, each model's lower quartile, 2 s), alternately in one process
on this machine's CPU, a busy process (`while True: pass`) started for 0.6 s in two of every three measurements.

On a CPU the forwards include the kernels' own compute, so py_call here is not a host cost (the probe times these
forwards on a GPU only): the script compares the two estimators' spread, nothing else.

    PYTHONPATH=. python3 benchmarks/host/probe_py_call_noise.py [N measurements of each, default 6]
"""
import contextlib
import statistics
import subprocess
import sys
import threading
import time
import warnings

import torch

from sim import probe_host as ph


class _Fixed:
    """A probe clock that gives every loop the same seconds."""

    def __init__(self, seconds):
        self.seconds = seconds

    def share(self, name):
        return self.seconds

    def part(self, name):
        return contextlib.nullcontext()

    def timed(self, name, fn, batch=50):
        fn()
        return ph._per_call_us(fn, self.seconds, batch, warm_up=False)


def _busy_for(delay, seconds):
    def go():
        p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(seconds)
        finally:
            p.kill()
            p.wait()
    threading.Timer(delay, go).start()


def main(n=6):
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    ids, llamas = ph._llamas("cpu")
    a, b, c = (torch.ones(1) for _ in range(3))
    m1, m2, m3 = (torch.ones(64, 64) for _ in range(3))
    x = torch.empty(8, 8)
    costs = {"view": (ph._per_call_us(lambda: (x.view(64), x.transpose(0, 1), x[:, :4]), 0.5) / 3, "cpu"),
             "launch": (ph._per_call_us(lambda: torch.add(a, b, out=c), 0.5), "cpu"),
             "library": (ph._per_call_us(lambda: torch.mm(m1, m2, out=m3), 0.5), "cpu"),
             "module": (0.9, "cpu"), "sync": (0.0, "cpu"), "graph_launch": (0.0, "cpu"), "collective": (1.0, "cpu"),
             "step": (1.0, "cpu")}     # one set for both ways, so only the forwards' timing differs
    fns = [(lambda m=model: m(input_ids=ids, use_cache=False, logits_to_keep=1)) for _, model, _ in llamas]

    def old():
        with torch.no_grad():
            return [_Fixed(1.0).timed("f", f, batch=10) for f in fns]

    def new():
        return ph._forward_us(_Fixed(2.0), "cpu", ids, llamas)[0]
    out = {"old (medians, separate loops)": [], "probe (interleaved, lower quartiles)": []}
    for i in range(n):
        ways = list(zip(out, (old, new)))
        for name, fn in ways if i % 2 == 0 else ways[::-1]:
            if i % 3 != 2:
                _busy_for(0.2 + 0.5 * (i % 2), 0.6)
            measured = fn()
            time.sleep(0.7)             # the busy process is gone before the next measurement
            out[name].append(ph._model_op_us(llamas, measured, costs)[1])
            print(f"{name} {i}: per layer {(measured[1] - measured[0]) / 6:.0f} us, py_call {out[name][-1]:.2f} us",
                  flush=True)
    for name, v in out.items():
        print(f"{name}: py_call {[round(u, 1) for u in v]} us, max/min {max(v) / max(min(v), 1e-9):.2f}, "
              f"relative s.d. {statistics.pstdev(v) / statistics.mean(v):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
