"""CTA tile shapes of the GPU GEMM kernels (cuBLAS/CUTLASS-style) and each shape's relative efficiency: the one
table the plain GEMM model (hw_models/gpu.py) and the grouped MoE GEMM model (hw_models/moe.py) both tile with."""

# (rows, columns, relative efficiency) of a tile
TILES = ((256, 128, 1.0), (128, 256, 1.0), (128, 128, 0.92), (64, 128, 0.75), (128, 64, 0.75), (64, 64, 0.5))
# GEMMs with few rows (decode: M = the batch) on devices whose calibration sets `mm_min_tile_m` below 64: tiles of 16
# or 32 rows, at the smallest tile's efficiency (no new efficiency number; only the row padding changes). 16 rows is
# the M of one tensor-core MMA instruction on Ampere and Hopper (PTX ISA: mma.sync.aligned.m16n8k16 for bf16/fp16), so
# a batch-1 GEMM is padded to 16 rows, not 64; its compute then sits well below its weight streaming, as in measured
# small-M GEMMs (flat in M up to ~64-128 rows: benchmarks/gpu/data/h100-sxm-2026-11-24/gemm.csv). Default 64: the
# tile set every device was fitted with; the A100 presets set 16 (docs/power.md: validated on POLCA's <= 7% slowdown
# at 1110 MHz for one request and Voltana's sub-linear 1410 -> 1005 MHz, both held out).
SMALL_M_TILES = ((32, 64, 0.5), (16, 64, 0.5))
