"""One kernel per CUDA-graph replay (how measure_stack.py times its attention and MoE rows) against 8 copies of it in
one graph (how a kernel runs inside a captured step), plus the profiler's (CUPTI) device time per call.

Asks (docs/stack-accuracy.md, fifth session 2026-12-06): what fixed cost a lone replay carries that a kernel inside a
step does not, and what measure.py's 2026-11-24 attention.csv (hwsim's attention op on contiguous [b, h, s, d]
inputs, where fit.py fitted attn_eff) timed besides the SDPA kernel.

Cases (bf16, head size 128, causal, enable_gqa):
  tiny           a one-element add_
  gemm           torch.mm 128 x 4096 x 4096
  sdpa           F.scaled_dot_product_attention on contiguous [b, h, s, d] (measure_stack.py's prefill rows)
  sdpa_bshd      the same on [b, s, h, d] tensors seen as [b, h, s, d] (transposed views: a model's layout)
  hwsim_op       hwsim's attention op (workloads/modules/attention_op.py) on contiguous [b, h, s, d] (measure.py)
  hwsim_op_bshd  hwsim's attention op on transposed views (what hwsim's eager modules run in their steps)
CSV on stdout: case, shape (b x hq x hkv x s), per_graph (1 or 8 calls in one graph), us_per_call (median replay
over per_graph), kernel_us (profiler device time per call, 8-call graph), power_w, sm_mhz (NVML mean).

usage: cd benchmarks/gpu && python3 measure_replay.py > replay.csv   (from a checkout: measure_stack.py, workloads)
"""
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, '../..')
import measure_stack as ms  # noqa: E402
from workloads.modules.attention_op import attention as A  # noqa: E402

ms.SAMPLER = ms.Sampler()
ms.SAMPLER.start()
r, c, bf = torch.randn, 'cuda', torch.bfloat16


def many(f, n):
    def g():
        for _ in range(n):
            f()
    return g


def ku(f, n):
    g = torch.cuda.CUDAGraph()
    many(f, n)()
    torch.cuda.synchronize()
    with torch.cuda.graph(g):
        many(f, n)()
    g.replay()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(3):
            g.replay()
        torch.cuda.synchronize()
    return sum(e.device_time for e in p.events() if e.device_type == torch.autograd.DeviceType.CUDA) / 3 / n


x = torch.zeros(1, device=c)
a = r(128, 4096, device=c, dtype=bf)
w = r(4096, 4096, device=c, dtype=bf)
C = [('tiny', (0,), lambda: x.add_(1.)), ('gemm', (128,), lambda: torch.mm(a, w.t()))]
for b, h, kv, s in ((1, 32, 8, 128), (1, 32, 8, 512), (1, 32, 8, 2048), (1, 32, 8, 8192), (4, 32, 8, 2048),
                    (16, 32, 8, 512), (64, 32, 8, 128)):
    q, k, v = r(b, h, s, 128, device=c, dtype=bf), r(b, kv, s, 128, device=c, dtype=bf), r(b, kv, s, 128, device=c, dtype=bf)
    qt, kt, vt = (r(b, s, n, 128, device=c, dtype=bf).transpose(1, 2) for n in (h, kv, kv))
    C += [('sdpa', (b, h, kv, s), lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                                          enable_gqa=True)),
          ('sdpa_bshd', (b, h, kv, s), lambda q=qt, k=kt, v=vt: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                                                  enable_gqa=True)),
          ('hwsim_op', (b, h, kv, s), lambda q=q, k=k, v=v: A(q, k, v, 128, True, 0, 0., False)),
          ('hwsim_op_bshd', (b, h, kv, s), lambda q=qt, k=kt, v=vt: A(q, k, v, 128, True, 0, 0., False))]
print('case,shape,per_graph,us_per_call,kernel_us,power_w,sm_mhz')
for n, sh, f in C:
    for m in (1, 8):
        t, _, pw, clk = ms.timed(many(f, m))
        print(n, 'x'.join(map(str, sh)), m, round(t / m * 1e6, 2), round(ku(f, m), 2) if m == 8 else '', pw, clk,
              sep=',', flush=True)
