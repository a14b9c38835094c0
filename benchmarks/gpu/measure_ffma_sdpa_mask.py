"""Synthetic kernels behind two classes of HF's eager forwards on a CUDA GPU (2026-12-06, session 5; fitted by
benchmarks/gpu/fit_ffma_mask.py):

- fp32 batched GEMMs with TF32 off (torch's default: cuBLAS's CUDA-core FFMA kernels, as SDPA's math path runs
  Q K^T and P V), K from 16 to 4096, B plain or transposed;
- bf16 SDPA, causal (`is_causal`) against the same causal pattern passed as an explicit boolean [b, 1, s, s] mask
  (what transformers hands SDPA once its sliding window is reached), head sizes 64-256.

Each timing: 3 warm-up calls, then the mean of 10 by CUDA events; `mhz` is torch.cuda.clock_rate() read after it.
Prints one JSON line per case. Run on the lent H100 as:  python3 benchmarks/gpu/measure_ffma_sdpa_mask.py
(the rows were split into data/h100-2026-12-06-ffma-sdpa-mask/ffma.csv and sdpa_mask.csv).
"""
import torch, json, sys
torch.backends.cuda.matmul.allow_tf32 = False
F = torch.nn.functional
dev = "cuda"
def clk():
    try: return torch.cuda.clock_rate()
    except Exception: return -1
def tm(fn, reps=10):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(True), torch.cuda.Event(True)
    s.record()
    for _ in range(reps): fn()
    e.record(); torch.cuda.synchronize()
    return s.elapsed_time(e) / reps / 1e3
out = []
# A: fp32 bmm without TF32 (CUDA-core FFMA)
for B, m, n, k, tr in [(64,2048,2048,k,t) for k in (16,32,64,128,256,512,1024,2048) for t in (0,1)] + \
        [(256,2048,64,2048,0),(64,4096,64,4096,0),(1,4096,4096,4096,0),(1,8192,8192,2048,0),(16,4096,4096,64,1),(32,1024,1024,64,1)]:
    a = torch.randn(B, m, k, device=dev)
    b = torch.randn(B, n, k, device=dev).transpose(1, 2) if tr else torch.randn(B, k, n, device=dev)
    t = tm(lambda: torch.bmm(a, b))
    out.append(dict(kind="ffma_bmm", B=B, m=m, n=n, k=k, bT=tr, s=t, tflops=2*B*m*n*k/t/1e12, mhz=clk()))
    del a, b
torch.cuda.empty_cache()
# B: SDPA bf16 causal vs explicit bool mask (the causal pattern, [b, 1, s, s]) as transformers passes it
for d, h in ((64, 32), (96, 32), (128, 32), (256, 16), (128, 16), (256, 32)):
    for b, s in ((1, 4096), (4, 2048), (8, 2048)):
        q, k, v = (torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
        mask = torch.ones(s, s, device=dev, dtype=torch.bool).tril()[None, None].expand(b, 1, s, s)
        tc = tm(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        tmk = tm(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        full = 4 * b * h * s * s * d
        out.append(dict(kind="sdpa", d=d, h=h, b=b, s=s, causal_s=tc, masked_s=tmk, causal_tf=full/2/tc/1e12, masked_full_tf=full/tmk/1e12, mhz=clk()))
        del q, k, v, mask
for r in out: print(json.dumps(r))
