"""hwsim predict speed (targets: a 70B-class case under 0.5 s including start-up; batch mode 2,000 cases/s).

Prints, each in a fresh process:
  cold template  the very first predict of a model/phase (traces it and fits the graph template)
  warm start-up  a new process predicting a new shape once the template is on disk
  batch          cases per second of `hwsim predict --cases` for 2,000 cases with repeated shapes, and for
                 2,000 all-distinct shapes (after start-up, as the command itself reports)
usage: python3 benchmarks/predict_speed.py
"""
from __future__ import annotations

import csv
import os
import random
import re
import subprocess
import sys
import tempfile
import time

CASE = ["predict", "--model", "llama-3.1-70b", "--hardware", "h200", "--phase", "decode", "--batch", "8", "--quant", "fp8"]


def hwsim(args, env):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, proc.stderr


def cases(path, distinct, n=2000):
    rng = random.Random(0)
    models = ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "llama-2-13b"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "hardware", "phase", "batch", "seq_len", "dtype"])
        for _ in range(n):
            b = rng.randint(1, 256) if distinct else rng.choice([1, 8, 32])
            s = rng.randint(64, 4096) if distinct else rng.choice([512, 2048])
            w.writerow([rng.choice(models), rng.choice(["h100", "h200"]), rng.choice(["prefill", "decode"]), b, s, "bf16"])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HWSIM_CACHE=tmp)
        cold, _ = hwsim(CASE + ["--seq-len", "2048"], env)
        warm = min(hwsim(CASE + ["--seq-len", str(3000 + i)], env)[0] for i in range(3))
        print(f"70B-class predict: cold (template built) {cold:.2f} s; warm start-up {warm:.2f} s (target 0.5 s)")
        for distinct in (False, True):
            path = os.path.join(tmp, "cases.csv")
            cases(path, distinct)
            hwsim(["predict", "--cases", path, "--out", os.path.join(tmp, "out.csv")], env)   # build templates
            _, err = hwsim(["predict", "--cases", path, "--out", os.path.join(tmp, "out.csv")], env)
            rate = float(re.search(r"\(([\d,]+) cases/s\)", err).group(1).replace(",", ""))
            label = "all-distinct shapes" if distinct else "repeated shapes"
            print(f"batch, {label}: {rate:,.0f} cases/s (target 2,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
