"""DFloat11 decompression throughput of a GPU (BF16 bytes written per second by the DF11 kernel).

Measured rates come from the device preset (`engines.vector.extra.df11_decompress_gbps`, the DFloat11 paper's
Fig. 7 kernel microbenchmark). A GPU without one gets an estimate scaled by SMs x clock from the bytes per
SM-cycle the measured GPUs reach: the kernel is table look-ups in shared memory, so it scales with SMs and
clock rather than DRAM bandwidth (the A5000 and A100 reach 21% and 17% of theirs, but 1.51 and 1.72 B per
SM-cycle). The rates are those of the largest matrix in Fig. 7 (4096 x 65536, 537 MB): DFloat11 decompresses a
whole transformer block at once (paper Section 2.3.3), and a block of the models studied is 0.5-1.1 GB.
"""
from __future__ import annotations

from hw_models.presets import load_device

MEASURED = ("rtx-a5000", "a100-40gb")     # presets that carry a Fig. 7 rate


def measured_rate(device):
    """The preset's measured rate in bytes/s, or None."""
    vector = device.engine_for("vector")
    gbps = (vector.extra if vector else {}).get("df11_decompress_gbps")
    return gbps * 1e9 if gbps else None


def _bytes_per_sm_cycle(device) -> float:
    vector = device.engine_for("vector")
    return measured_rate(device) / (vector.units * vector.clock_mhz * 1e6)


def decompress_rate(device) -> tuple:
    """(bytes/s, source) of DF11 decompression on the device."""
    rate = measured_rate(device)
    if rate:
        return rate, f"measured: DFloat11 paper Fig. 7 on the {device.name}"
    refs = [load_device(d) for d in MEASURED]
    per = sum(_bytes_per_sm_cycle(d) for d in refs) / len(refs)
    vector = device.engine_for("vector")
    rate = per * vector.units * vector.clock_mhz * 1e6
    return rate, (f"estimate: {per:.2f} B per SM-cycle (mean of the paper's A5000 and A100 Fig. 7 rates) x "
                  f"{vector.units} SMs x {vector.clock_mhz:.0f} MHz")
