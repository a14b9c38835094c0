"""The golden simulate cases: ~50 `hwsim simulate` runs over every mapping, system, stack and phase.

`python3 -m tests.golden.simulate_cases record` (re)writes simulate_golden.csv from the code as it is; the test
(tests/test_golden.py) re-runs every case in-process and compares. The table was first recorded on main at
0fada59, before the execution layer was rewritten (issue 8), so it holds that rewrite to the figures of before.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("simulate_golden.csv")
FIELDS = ("latency_s", "energy_j", "avg_power_w", "devices", "link_bytes", "clock_mhz")

W70 = "--model llama-3.1-70b"
CASES = [
    # single device
    f"--model llama-3.1-8b --system h100 --mapping single --phase prefill --seq-len 2048",
    f"--model llama-3.1-8b --system h100 --mapping single --phase decode --batch 16 --seq-len 1024",
    f"--model llama-3.1-8b --system h200 --mapping single --phase decode --batch 64 --seq-len 4096 --profile fused",
    f"--model llama-3.1-8b --system h100 --mapping single --phase decode --batch 1 --seq-len 512 --profile eager-launch",
    f"--model qwen2.5-7b --system h100 --mapping single --phase chunked_prefill --seq-len 512 --context 1024",
    f"--model llama-3.1-8b --system a100 --mapping single --phase prefill --batch 2 --seq-len 1024",
    f"--model llama-3.1-8b --system dgx-h100 --mapping single --phase decode --batch 8 --seq-len 2048 --quant fp8",
    # tensor parallel
    f"{W70} --system dgx-h100 --mapping tp:8 --phase decode --batch 8 --seq-len 2048",
    f"{W70} --system dgx-h100 --mapping tp:8 --phase decode --batch 8 --seq-len 2048 --profile fused",
    f"{W70} --system dgx-h100 --mapping tp:8 --phase prefill --batch 1 --seq-len 2048",
    f"{W70} --system dgx-h100 --mapping tp:4 --phase prefill --batch 2 --seq-len 1024 --profile fused",
    f"{W70} --system dgx-h100 --mapping tp:8 --phase decode --batch 1 --seq-len 512 --profile eager-launch",
    f"{W70} --system dgx-h200 --mapping tp:4 --phase decode --batch 32 --seq-len 4096",
    f"{W70} --system dgx-a100 --mapping tp:8 --phase decode --batch 16 --seq-len 1024",
    f"--model llama-3.1-8b --system dgx-h100 --mapping tp:2 --phase decode --batch 4 --seq-len 1024",
    f"--model llama-3.1-8b --system dgx-h100 --mapping tp:2 --phase prefill --seq-len 4096 --profile fused",
    f"--model mistral-7b --system dgx-h100 --mapping tp:4 --phase decode --batch 32 --seq-len 2048 --quant fp8",
    f"--model llama-2-13b --system dgx-h100-x2 --mapping tp:8 --phase decode --batch 8 --seq-len 1024",
    f"--model llama-3.1-8b --system dgx-h100 --mapping tp:8 --phase chunked_prefill --seq-len 256 --context 2048",
    # pipeline and data parallel
    f"{W70} --system dgx-h100 --mapping tp:4,pp:2 --phase prefill --batch 2 --seq-len 1024",
    f"{W70} --system dgx-h100 --mapping tp:4,pp:2,mb:8 --phase prefill --batch 8 --seq-len 512",
    f"{W70} --system dgx-h100 --mapping tp:2,pp:4 --phase decode --batch 16 --seq-len 2048",
    f"--model llama-3.1-8b --system dgx-h100 --mapping pp:4 --phase decode --batch 8 --seq-len 1024",
    f"--model llama-3.1-8b --system dgx-h100 --mapping pp:2,mb:4 --phase prefill --batch 4 --seq-len 512 --profile fused",
    f"--model llama-3.1-8b --system dgx-h100 --mapping tp:2,dp:4 --phase decode --batch 8 --seq-len 1024",
    f"--model llama-3.1-8b --system dgx-h100 --mapping dp:8 --phase prefill --batch 1 --seq-len 1024",
    f"{W70} --system dgx-h100 --mapping tp:4,pp:2,dp:1 --phase decode --batch 8 --seq-len 1024",
    # expert parallel (MoE)
    f"--model mixtral-8x7b --system dgx-h100 --mapping ep:8 --phase decode --batch 8 --seq-len 1024",
    f"--model mixtral-8x7b --system dgx-h100 --mapping ep:4 --phase prefill --batch 4 --seq-len 512",
    f"--model mixtral-8x7b --system dgx-h100 --mapping tp:4 --phase decode --batch 8 --seq-len 1024",
    f"--model mixtral-8x7b --system dgx-h100 --mapping ep:2,dp:2 --phase decode --batch 4 --seq-len 512 --profile fused",
    # offload and DFloat11
    f"--model qwen3-14b --system a5000-host-offload --mapping offload --phase decode --batch 8 --seq-len 200",
    f"--model qwen3-14b --system a5000-host-offload --mapping offload:0 --phase decode --batch 1 --seq-len 200",
    f"--model qwen3-14b --system a5000-host-offload --mapping offload-overlap --phase decode --batch 8 --seq-len 200",
    f"--model llama-3.1-8b --system h100-host-offload --mapping offload:0.5 --phase prefill --seq-len 1024",
    f"--model llama-3.1-8b --system h100-host-offload --mapping df11 --phase decode --batch 8 --seq-len 512",
    f"--model llama-3.1-8b --system h100-host-offload --mapping df11 --phase prefill --seq-len 1024",
    f"--model qwen3-14b --system rtx8000-host-offload --mapping df11,offload --phase decode --batch 4 --seq-len 200",
    f"--model llama-3.1-8b --system a100-host-offload --mapping offload:0.25 --phase decode --batch 1 --seq-len 512",
    f"--model llama-3.1-8b --system h100-host-offload --mapping single --phase decode --batch 8 --seq-len 512",
    # FPGA dataflow
    f"--model llama-2-7b --system u280-host --mapping dataflow --phase decode --seq-len 512 --quant w4a16",
    f"--model llama-2-7b --system u280-host --mapping dataflow --phase prefill --seq-len 128 --quant w4a16",
    f"--model llama-2-7b --system u280-host --mapping dataflow,lmhost --phase decode --seq-len 512 --quant w4a16",
    f"--model bitnet-b1.58-0.7b --system kv260-board --mapping dataflow,lmhost --phase decode --seq-len 512 --quant ternary",
    f"--model bitnet-b1.58-0.7b --system kv260-board --mapping dataflow,lmhost --phase prefill --seq-len 64 --quant ternary",
    # other device classes as one-device systems
    f"--model llama-3.1-8b --system tpu-v5e --mapping single --phase decode --batch 8 --seq-len 1024 --quant w8a8",
    f"--model qwen1.5-1.8b --system snapdragon-8gen3-phone --mapping single --phase prefill --seq-len 256 --quant w8a8",
    f"--model llama-3.1-8b --system dgx-h100 --mapping tp:4 --phase decode --batch 8 --seq-len 1024 --shared-prefix 512",
    f"--model llama-3.1-8b --system dgx-h100 --mapping tp:2 --phase decode --batch 8 --seq-len 1024 --drop-layers 0-3",
    f"--model llama-2-13b --system dgx-h100 --mapping tp:2,pp:2 --phase decode --batch 8 --seq-len 1024 --quant w4a16",
]


def run_case(case: str) -> dict:
    """One case through the CLI in-process: the figures of its JSON output (or the one-line error)."""
    from sim.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["simulate", *case.split(), "--json"])
    if code != 0:
        return {"case": case, "error": err.getvalue().strip()}
    r = json.loads(out.getvalue())["result"]
    return {"case": case, "error": "", "latency_s": r["latency_s"], "energy_j": r["energy_j"],
            "avg_power_w": r["avg_power_w"], "devices": r["devices"],
            "link_bytes": sum(r["link_bytes"].values()), "clock_mhz": r["clock_mhz"]}


def record() -> None:
    rows = [run_case(c) for c in CASES]
    with open(TABLE, "w", newline="") as f:
        w = csv.DictWriter(f, ["case", "error", *FIELDS])
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} cases -> {TABLE} ({sum(1 for r in rows if r['error'])} errors)")


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        record()
