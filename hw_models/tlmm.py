"""Timing of a table-lookup ternary matmul (TLMM) engine, in the shape of TeLLMe v2's released HLS.

Why this shape (UCI-CORSA/TeLLMe_FPGA_2026, src/config/config.hpp and src/linear.hpp, read here, not
copied): activations arrive one INT8 value per clock; every `tables x group` of them (28 x 3 = 84) the
engine reads them in (loop READ_A: 84 clocks, not overlapped with the lookups), builds 28 tables of
the 27 sums of 3 activations, then sweeps the output rows `rows` at a time (HIDDEN2_BLOCK = 16, one
pipelined iteration every `ii` clocks), each row adding 28 table entries picked by 5-bit weight indices. Tokens
run one after another (TOKEN_LOOP): weights stay in the URAM buffer, so a prompt of m tokens costs m
times one token. Cycles of an m x k by k x n matmul:
    m x ceil(k / (tables x group)) x (tables x group + ceil(n / rows) x ii)  +  m x ceil(n / rows)
(the last term: the per-token write-out of the accumulators, loop WRITE_C).
ii = 2, derived, not from a synthesis report: each sweep iteration reads 16 consecutive rows of the weight
buffer, which top_bitnet.hpp splits into 8 URAM banks (ARRAY_PARTITION cyclic factor 8, BIND_STORAGE
ram_1wnr impl=uram): one write and one read port per bank, so 8 row reads per clock. A second read port
by replication would need ~96 URAMs (8 banks x 140-bit words x 10,944 deep = 48 URAMs, twice) of the
KV260's 64, and TeLLMe reports using 60.

Weights (src/load_weight.hpp): one 5-bit index codes 3 ternary weights; 28 indices (140 bits) per
buffer word; three 256-bit AXI ports deliver 5 words per clock. The URAM buffer holds `regions` x
(`steps_per_region` k-steps x `rows_per_region` output rows); a matmul loads whole regions (Q/K/V/O:
1 region each; gate/up: 3 (4096 rows); down: 3 (49 k-steps)), so padding counts in the bytes moved.
"""
from __future__ import annotations

from math import ceil

# src/config/config.hpp (TeLLMe_FPGA_2026): TMAC_TABLE_NUM 28, TMAC_GROUP_SIZE 3, HIDDEN2_BLOCK 16,
# TMAC_INDEX_WIDTH 5, HIDDEN2_SIZE 1536 rows per region, TMAC_INDEX_SIZE / TMAC_TABLE_NUM = 532 / 28 = 19
# k-steps per region, AXI_XFER_BIT_WIDTH 256 x 3 weight ports (top_bitnet.hpp weight_dram1..3).
TELLME = {"tables": 28, "group": 3, "rows": 16, "ii": 2, "index_bits": 5,
          "rows_per_region": 1536, "steps_per_region": 19, "port_bytes": 32, "ports": 3, "words_per_beat": 5}


def k_steps(k: int, d: dict) -> int:
    return ceil(k / (d["tables"] * d["group"]))


def tlmm_cycles(m: int, k: int, n: int, d: dict = TELLME) -> float:
    """Clock cycles of an m x k x n ternary matmul on the engine `d` (see the module docstring)."""
    sweep = ceil(n / d["rows"]) * d["ii"]
    return m * (k_steps(k, d) * (d["tables"] * d["group"] + sweep) + ceil(n / d["rows"]))


def regions(k: int, n: int, d: dict = TELLME) -> int:
    """URAM weight-buffer regions a k x n weight matrix fills (whole regions are loaded)."""
    return ceil(n / d["rows_per_region"]) * ceil(k_steps(k, d) / d["steps_per_region"])


def load_beats(k: int, n: int, d: dict = TELLME) -> int:
    """AXI beats (one per clock at II=1, `ports` x `port_bytes` each) that load one matmul's weights."""
    return regions(k, n, d) * d["steps_per_region"] * ceil(d["rows_per_region"] / d["words_per_beat"])


def load_bytes(k: int, n: int, d: dict = TELLME) -> float:
    return load_beats(k, n, d) * d["ports"] * d["port_bytes"]
