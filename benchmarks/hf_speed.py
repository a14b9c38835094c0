"""`--impl hf` speed (issue 18 targets: at most 2 s per new model and phase; a 1,000-row HF cases file at 5,000 cases/s).

Prints, in fresh processes with an empty template cache:
  import            `import transformers`, then the model code every HF model needs (`transformers.modeling_utils`,
                    masks, caches: about 1.6 s of torch/transformers lazy imports that the process's first model
                    would otherwise pay); once per process, before any model
  per model/phase   the first step of a new model and phase: building its meta-device model (first phase only), a
                    direct trace, and the graph template (6-13 traces fitted and checked) that later steps reuse
  cases             `hwsim predict --cases` on 1,000 rows of HF configs (dense models, random shapes, both GPUs),
                    cold (templates built in the run) and warm (templates on disk), as the command reports
                    (wall time), then the warm run's CPU time in a fresh process: on a shared, loaded machine the
                    wall-clock rate follows the load (the 1-minute load average is printed beside it)
usage: python3 benchmarks/hf_speed.py
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

MODELS = ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "gpt2"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r"""
import sys, time, warnings
warnings.simplefilter("ignore")
t = time.perf_counter(); import torch; t_torch = time.perf_counter() - t
t = time.perf_counter(); import transformers; t_tf = time.perf_counter() - t
t = time.perf_counter(); import transformers.modeling_utils, transformers.masking_utils, transformers.cache_utils
t_code = time.perf_counter() - t
print(f"import torch {t_torch:.2f} s, import transformers {t_tf:.2f} s, its model code {t_code:.2f} s "
      f"(transformers {transformers.__version__}; once per process)")
from workloads.capture import _template, _trace_hf, load_spec
from workloads.hf import hf_model
for model in sys.argv[1:]:
    spec = load_spec(model, "hf")
    t = time.perf_counter(); hf_model(spec.source_config, spec.name); build = time.perf_counter() - t
    for phase in ("prefill", "decode", "chunked_prefill"):
        t = time.perf_counter(); _trace_hf(spec, phase, 4, 256, 512 if phase == "chunked_prefill" else 0); direct = time.perf_counter() - t
        t = time.perf_counter(); tpl = _template(spec, phase, "hf"); fit = time.perf_counter() - t
        print(f"{model:14s} {phase:16s} build {build:4.2f} s  one trace {direct:4.2f} s  template {fit:4.2f} s"
              f"{'' if tpl is not None else ' (no template: direct traces)'}  total {build + direct + fit:4.2f} s")
        build = 0.0
"""

WARM = r"""
import sys, time
from sim.batch_predict import predict_cases
from sim.cases import read_cases
frame = read_cases(sys.argv[1])
w, c = time.perf_counter(), time.process_time(); predict_cases(frame); w, c = time.perf_counter() - w, time.process_time() - c
again = []
for _ in range(5):
    t = time.process_time(); predict_cases(frame); again.append(time.process_time() - t)
n = len(frame)
print(f"{n / w:,.0f} cases/s wall, {n / c:,.0f} per CPU-second in a fresh process; {n / min(again):,.0f} per "
      f"CPU-second in-process again")
"""


def cases(path, n=1000, impl="hf"):
    rng = random.Random(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "hardware", "phase", "batch", "seq_len", "dtype", "impl"])
        for _ in range(n):
            w.writerow([rng.choice(MODELS[:3]), rng.choice(["h100", "h200"]), rng.choice(["prefill", "decode"]),
                        rng.randint(1, 64), rng.randint(64, 4000), "bf16", impl])


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HWSIM_CACHE=tmp, PYTHONPATH=ROOT)
        out = subprocess.run([sys.executable, "-c", PROBE, *MODELS], capture_output=True, text=True, env=env,
                             cwd=ROOT)
        print(out.stdout.strip())
        if out.returncode:
            print(out.stderr.strip()[-2000:])
    for impl in ("hf", "hwsim"):     # the same rows through hwsim's own modules: the baseline on this machine
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, HWSIM_CACHE=tmp, PYTHONPATH=ROOT)
            path = os.path.join(tmp, "cases.csv")
            cases(path, impl=impl)
            for label in ("cold (templates built in the run)", "warm (templates on disk)"):
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "sim.cli", "predict", "--cases", path, "--out",
                                       os.path.join(tmp, "out.csv")], capture_output=True, text=True, env=env, cwd=ROOT)
                wall = time.perf_counter() - start
                m = re.search(r"\(([\d,]+) cases/s\)", proc.stderr)
                if not m:
                    print(proc.stderr.strip()[-1000:])
                    return 1
                print(f"1,000 cases --impl {impl}, {label}: {float(m.group(1).replace(',', '')):,.0f} cases/s as the "
                      f"command reports (target 5,000); {wall:.1f} s wall including start-up and imports; "
                      f"load average {os.getloadavg()[0]:.1f}")
            proc = subprocess.run([sys.executable, "-c", WARM, path], capture_output=True, text=True, env=env, cwd=ROOT)
            print(f"1,000 cases --impl {impl}, warm, predict_cases alone: "
                  f"{proc.stdout.strip() or proc.stderr.strip()[-1000:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
