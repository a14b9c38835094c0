"""Lamina (arXiv 2405.01814 v2) reproduction attempt: decode throughput at similar cost, homogeneous H100
tensor parallelism vs model-attention disaggregation (H100s for the GEMMs, H20s for attention and KV).

Configuration from the paper (../shared/seed-papers.md): LLaMA3-70B (GQA 8), bf16; equal-cost pair
DOP (2, 4) = 2 H100 + 4 H20 ($40.64/h) against 4 H100 ($44.24/h); 400 Gb/s RoCE per GPU; Azure-Conv
trace means (prompt 1,155, output 211: about 1,260 tokens of context in decode). The batch is whatever the
KV cache memory allows (the paper's gain comes from larger batches). Every number printed comes from the
models; the paper's range is printed beside it.

usage: python3 -m studies.lamina
"""
from __future__ import annotations

import sys

from hw_models import load_device
from hw_models.systems import DeviceGroup, SystemLink, SystemSpec
from mapping import lamina, map_graph
from sim.engine import simulate
from workloads import trace

MODEL, CONTEXT = "llama-3-70b", 1260
PAPER = (0.161, 0.901)                  # +16.1% .. +90.1% throughput at similar cost (v2 abstract)
ROCE_GBPS, ROCE_LATENCY_US = 50.0, 5.0  # 400 Gb/s per GPU (paper); latency an estimate
MEMORY_MARGIN = 0.9                     # keep 10% of device memory for activations and the runtime


def _system(preset, n, link_gbps):
    return SystemSpec(id=f"{preset}x{n}", name=preset, devices={"gpu": DeviceGroup(preset=preset, count=n)},
                      links={"nvlink": SystemLink(connects=["gpu", "gpu"], bandwidth_gbps=link_gbps, latency_us=2.0)})


def max_batch(kv_capacity_bytes, kv_per_token):
    return max(1, int(kv_capacity_bytes // (kv_per_token * CONTEXT)) // 2 * 2)


def main() -> int:
    h100, h20 = load_device("h100"), load_device("h20-96gb")
    probe = trace(MODEL, "decode", 2, CONTEXT)
    weights, kv_token = probe.meta["weight_storage_bytes"], probe.meta["kv_bytes_per_token"]

    # homogeneous: 4 H100, TP4
    n = 4
    base_batch = max_batch(n * h100.main_memory.capacity_gb * 1e9 * MEMORY_MARGIN - weights, kv_token)
    system = _system("h100-sxm-80gb", n, 450)
    base = simulate(map_graph(trace(MODEL, "decode", base_batch, CONTEXT), system, f"tp:{n}"), system)
    base_cost = n * h100.price_usd_per_hour
    base_tput = base_batch / base.latency_s

    # Lamina DOP (2, 4): weights on 2 H100 (TP2), KV and attention on 4 H20
    g, m = 2, 4
    if weights / g > h100.main_memory.capacity_gb * 1e9 * MEMORY_MARGIN:
        print("the weights do not fit on the compute GPUs")
        return 1
    lam_batch = max_batch(m * h20.main_memory.capacity_gb * 1e9 * MEMORY_MARGIN, kv_token)
    half = trace(MODEL, "decode", lam_batch // 2, CONTEXT)
    step = lamina.decode_step(half, h100, h20, g, m, ROCE_GBPS, ROCE_LATENCY_US, _system("h100-sxm-80gb", g, 450),
                              _system("h20-96gb", m, 450))
    lam_cost = g * h100.price_usd_per_hour + m * h20.price_usd_per_hour
    lam_tput = lam_batch / step["latency_s"]

    print(f"{'setup':28s} {'batch':>6s} {'step ms':>8s} {'tokens/s':>9s} {'$/h':>7s} {'tokens/s per $/h':>17s}")
    print(f"{'4x H100, TP4':28s} {base_batch:6d} {base.latency_s * 1e3:8.1f} {base_tput:9.0f} {base_cost:7.2f} "
          f"{base_tput / base_cost:17.1f}")
    print(f"{'Lamina 2x H100 + 4x H20':28s} {lam_batch:6d} {step['latency_s'] * 1e3:8.1f} {lam_tput:9.0f} "
          f"{lam_cost:7.2f} {lam_tput / lam_cost:17.1f}")
    gain = lam_tput / base_tput - 1
    print(f"\nthroughput gain at similar cost: {100 * gain:+.1f}% (paper: +{100 * PAPER[0]:.1f}% to "
          f"+{100 * PAPER[1]:.1f}%); batch ratio {lam_batch / base_batch:.2f}x (paper: 2.39x on average)")
    busy = step["busy"]
    print(f"Lamina step: GPU busy {100 * busy['gpu'] / step['latency_s']:.0f}%, memory devices "
          f"{100 * busy['mem'] / step['latency_s']:.0f}%, network {100 * busy['net'] / step['latency_s']:.0f}%")
    if not PAPER[0] * 0.85 <= gain <= PAPER[1] * 1.15:
        print("NOT REPRODUCED within the paper's range.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
