"""Tensor-parallel and expert-parallel decoder steps on 1-8 GPUs of one host (issue 16), with per-GPU power.

NOT RUN ON SEVERAL GPUS YET: written when only single-GPU machines were lent; checked with gloo on the CPU
(world size 2, tiny configs) and meant for one GPU (world size 1). No multi-GPU data from it exists here.

Dense models, Megatron-style tensor parallelism over all N ranks (TP = world size): the layers of hwsim's
eager modules (separate q/k/v and gate/up projections, unfused RMSNorm, RoPE and SiLU-mul, SDPA attention, a
preallocated KV cache written every step), split as Megatron splits them: q/k/v and gate/up column-parallel
(heads and FFN width / N; KV heads replicated where fewer than N), o_proj and down_proj row-parallel, each
followed by an all-reduce of the full activation; the embedding vocab-parallel with its all-reduce
(Megatron's and vLLM's VocabParallelEmbedding; `--embedding replicated` drops it, as hwsim's tp mapping
models it); the LM head column-parallel over the vocabulary with an all-gather of the logits (prefill: the
last token of each sequence; decode: every new token).
MoE (`--moe`), expert parallelism over N ranks as hwsim's ep mapping models it: attention, norms, router,
embedding and LM head replicated and data parallel (each rank takes batch/N sequences); the experts spread
E/N per rank; every MoE layer sends each routed token row to its expert's rank and back with two equal-split
all-to-alls. The router GEMM, softmax and top-k run, but the token-to-expert assignment is fixed and exactly
balanced (token t's k-th choice is expert (t*top_k + k) mod E), so that shapes are static for the CUDA graph
and equal to hwsim's even routing.
Shapes come from workloads/zoo/NAME.json (read as JSON; a ":L" after a name keeps the first L layers).
Weights and caches are random normal bf16 values; nothing is downloaded.

Timing: on GPUs each step is captured in one CUDA graph (collectives included) and its replays are timed with
CUDA events after a barrier: median of >= --min-reps replays and >= --min-time s; step_us is the slowest
rank's median. On the CPU (gloo) the steps run eagerly, timed with perf_counter. Power: the graph replayed
back to back for --power-s seconds (no barriers), each GPU's NVML energy counter read around it.

Environment: never sets or overrides NCCL_NVLS_ENABLE, TORCH_SYMM_MEM_DISABLE_MULTICAST, NVSHMEM_DISABLE_NVLS
or any other NCCL_*/NVSHMEM_* variable and calls no multicast API; the device machines keep NVLink multicast
off, and env.json records what was set.

Check (--check, no timing): float32 weights, caches and tokens drawn whole from one seed, each rank keeping its
part, and each case's whole-batch logits written to OUT/check_logits.pt; world sizes 1 and N must agree (the
test does this with gloo at N = 2), which checks the splits and collectives, not only their shapes.

Writes (rank 0) OUT/tp_steps.csv and OUT/env.json.
usage (on an N-GPU machine, from the repository root; TP = EP = N):
  torchrun --standalone --nproc-per-node N benchmarks/gpu/measure_tp_steps.py --out DIR [--budget 480]
  python3 benchmarks/gpu/measure_tp_steps.py --backend gloo --spawn 2 --tiny --out DIR       (CPU check)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_common import Writer, capture_graph, environment, launch, power_summary  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "workloads", "zoo")
# one MHA, two GQA (the second >= 30B, truncated); the MoE for expert parallelism
DENSE = "llama-2-7b,llama-3.1-8b,llama-3.1-70b:16"
MOE = "mixtral-8x7b:8"
DECODE = [(1, 512), (8, 512), (32, 1024), (64, 2048)]          # (batch, cached tokens)
PREFILL = [(1, 512), (1, 2048), (4, 2048)]                      # (batch, prompt tokens)
MOE_DECODE = [(32, 512), (128, 1024)]                           # batch: a multiple of 8 x E / (N x top_k)
MOE_PREFILL = [(8, 512)]
FIELDS = ["backend", "world_size", "model", "parallel", "degree", "layers", "config_layers", "phase", "batch",
          "seq_len", "embedding", "mode", "step_us", "step_us_fastest_rank", "reps", "power_w", "power_w_per_gpu",
          "energy_j_per_step", "sustain_s", "status"]
ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


# --- model shapes -------------------------------------------------------------------------------------------
def load_config(item: str, tiny: bool) -> dict:
    """name[:layers] -> the shapes used here. tiny: the same kind of model at toy sizes (tests on the CPU)."""
    name, _, layers = item.partition(":")
    with open(os.path.join(ZOO, f"{name}.json")) as f:
        cfg = json.load(f)
    heads = cfg["num_attention_heads"]
    c = {"name": name, "hidden": cfg["hidden_size"], "heads": heads,
         "kv_heads": cfg.get("num_key_value_heads") or heads,
         "head_dim": cfg.get("head_dim") or cfg["hidden_size"] // heads,
         "intermediate": cfg["intermediate_size"], "vocab": cfg["vocab_size"], "eps": cfg.get("rms_norm_eps", 1e-5),
         "theta": float(cfg.get("rope_theta", 10000.0)), "config_layers": cfg["num_hidden_layers"],
         "experts": cfg.get("num_local_experts") or 0, "top_k": cfg.get("num_experts_per_tok") or 0}
    if cfg.get("model_type") not in ("llama", "mistral", "mixtral") or cfg.get("attention_bias"):
        raise SystemExit(f"{name}: only llama-style decoders (no attention bias) are built here")
    c["layers"] = min(int(layers), c["config_layers"]) if layers else c["config_layers"]
    if tiny:
        gqa = c["kv_heads"] < heads
        c.update(hidden=64, heads=4, kv_heads=2 if gqa else 4, head_dim=16, intermediate=128, vocab=512,
                 layers=2, experts=4 if c["experts"] else 0, top_k=2 if c["experts"] else 0)
    return c


DTYPE = torch.bfloat16            # float32 under --check


class Init:
    """Random weights and caches. Normally each rank draws only its own shard. With a seed (--check) every
    tensor is drawn whole, the same on every rank and world size, and this rank's part is cut out of it, so a
    sharded step must give the unsharded step's logits."""

    def __init__(self, device, seed=None):
        self.device, self.seed, self.count = device, seed, 0

    def __call__(self, full, dim=None, start=0, length=None, scale=0.02, keep=True):
        shape = list(full)
        if dim is not None:
            shape[dim] = length
        if self.seed is None:
            return (torch.randn(*shape, device=self.device, dtype=torch.float32) * scale).to(DTYPE) if keep else None
        self.count += 1
        g = torch.Generator().manual_seed(self.seed * 100003 + self.count)
        whole = torch.randn(*full, generator=g) * scale
        part = whole.narrow(dim, start, length) if dim is not None else whole
        return part.contiguous().to(self.device, DTYPE) if keep else None

    def ids(self, vocab, full, start, length):
        if self.seed is None:
            return torch.randint(0, vocab, (length,) + tuple(full[1:]), device=self.device)
        g = torch.Generator().manual_seed(self.seed * 7 + 1)
        return torch.randint(0, vocab, tuple(full), generator=g).narrow(0, start, length).to(self.device)


# --- the pieces of a step -----------------------------------------------------------------------------------
def rms_norm(x, w, eps):
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return w * x32.to(x.dtype)


def rope_tables(positions, d, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32, device=device) / d))
    freqs = positions.to(torch.float32)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(DTYPE)[None, None], emb.sin().to(DTYPE)[None, None]       # [1, 1, s, d]


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class Layer:
    """One decoder layer's weights on this rank: attention heads h of H, KV heads kvh, FFN width ff (dense) or
    local experts (MoE)."""

    def __init__(self, c, init, shard):
        d, H, I = c["head_dim"], c["hidden"], c["intermediate"]
        h, h0, kvh, kv0, ff, ff0, e0, local = shard
        self.h, self.kvh, self.d = h, kvh, d
        device = init.device
        self.ln1, self.ln2 = torch.ones(H, device=device, dtype=DTYPE), torch.ones(H, device=device, dtype=DTYPE)
        self.wq = init((c["heads"] * d, H), 0, h0 * d, h * d)
        self.wk = init((c["kv_heads"] * d, H), 0, kv0 * d, kvh * d)
        self.wv = init((c["kv_heads"] * d, H), 0, kv0 * d, kvh * d)
        self.wo = init((H, c["heads"] * d), 1, h0 * d, h * d)
        if local:
            self.router = init((c["experts"], H))
            made = [(init((I, H), keep=keep), init((I, H), keep=keep), init((H, I), keep=keep))
                    for keep in (e0 <= e < e0 + local for e in range(c["experts"]))]
            self.experts = [w for w in made if w[0] is not None]
        else:
            self.wg, self.wu = init((I, H), 0, ff0, ff), init((I, H), 0, ff0, ff)
            self.wd = init((H, I), 1, ff0, ff)


class Model:
    """A truncated decoder on one rank, with its KV caches for one step shape, and a step function."""

    def __init__(self, ctx, c, parallel: str, phase: str, batch: int, seq: int, embedding: str, seed=None):
        n, r, dev = ctx.world, ctx.rank, ctx.device
        init = Init(dev, seed)
        self.ctx, self.c, self.parallel, self.phase, self.embedding = ctx, c, parallel, phase, embedding
        tp = n if parallel == "tp" else 1
        self.tp = tp
        if parallel == "tp":
            for what in ("heads", "intermediate", "vocab"):
                if c[what] % n:
                    raise ValueError(f"tp:{n} does not divide the {c[what]} {what} of {c['name']}")
            h, kvh, ff, local = c["heads"] // n, max(1, c["kv_heads"] // n), c["intermediate"] // n, 0
            kv0 = r * kvh if c["kv_heads"] >= n else r * c["kv_heads"] // n      # replicated KV heads
            shard = (h, r * h, kvh, kv0, ff, r * ff, 0, 0)
            self.batch, b0 = batch, 0
        else:
            if c["experts"] % n or batch % n:
                raise ValueError(f"ep:{n} needs N | experts ({c['experts']}) and N | batch ({batch})")
            h, kvh, ff, local = c["heads"], c["kv_heads"], 0, c["experts"] // n
            shard = (h, 0, kvh, 0, 0, 0, r * local, local)
            self.batch = batch // n
            b0 = r * self.batch
        self.new = seq if phase == "prefill" else 1
        self.cached = 0 if phase == "prefill" else seq
        tokens = self.batch * self.new
        if parallel == "ep" and (tokens * c["top_k"]) % c["experts"]:
            raise ValueError(f"ep:{n}: {tokens} local tokens x top-{c['top_k']} do not spread evenly over "
                             f"{c['experts']} experts")
        self.layers = [Layer(c, init, shard) for _ in range(c["layers"])]
        vocab_local = c["vocab"] // tp
        self.vocab_start = r * vocab_local if tp > 1 else 0
        V, H = c["vocab"], c["hidden"]
        if tp > 1 and embedding == "vocab-parallel":
            self.embed = init((V, H), 0, self.vocab_start, vocab_local, scale=1.0)
        else:
            self.embed = init((V, H), scale=1.0)
        self.norm = torch.ones(H, device=dev, dtype=DTYPE)
        self.head = init((V, H), 0, self.vocab_start, vocab_local)
        slots = self.cached + self.new
        full = (batch, c["kv_heads"], slots, c["head_dim"])                  # whole cache: cut by batch or heads
        cut = (0, b0, self.batch) if parallel == "ep" else (1, shard[3], kvh)
        self.caches = [(init(full, *cut, scale=1.0), init(full, *cut, scale=1.0)) for _ in self.layers]
        self.ids = init.ids(V, (batch, self.new), b0, self.batch)
        positions = torch.arange(self.cached, self.cached + self.new, device=dev)
        self.cos, self.sin = rope_tables(positions, c["head_dim"], c["theta"], dev)
        self.logits = None
        if parallel == "ep":
            self._routing(tokens)

    def _routing(self, tokens):
        """Fixed, balanced routing: row (t, k) goes to expert (t*top_k + k) mod E. Rows are sent grouped by expert
        (so by destination rank); each rank receives E/N experts x `per` rows from every rank."""
        c, n, dev = self.c, self.ctx.world, self.ctx.device
        k, E = c["top_k"], c["experts"]
        expert = (torch.arange(tokens * k, device=dev)) % E              # row t*k + kk -> expert
        order = torch.argsort(expert, stable=True)                       # rows grouped by expert
        self.send_token = order // k                                     # the token each sent row carries
        self.send_slot = order % k                                       # which of its top-k choices
        self.per = tokens * k // E                                       # rows per expert from this rank
        self.local = E // n

    # collectives (no-ops at world size 1)
    def all_reduce(self, x):
        if self.tp > 1:
            dist.all_reduce(x)
        return x

    def attention(self, L, x, cache):
        b, s, _ = x.shape
        q = F.linear(x, L.wq).view(b, s, L.h, L.d).transpose(1, 2)
        k = F.linear(x, L.wk).view(b, s, L.kvh, L.d).transpose(1, 2)
        v = F.linear(x, L.wv).view(b, s, L.kvh, L.d).transpose(1, 2)
        q, k = rotate(q, self.cos, self.sin), rotate(k, self.cos, self.sin)
        kc, vc = cache
        kc[:, :, self.cached:self.cached + s].copy_(k)
        vc[:, :, self.cached:self.cached + s].copy_(v)
        if self.phase == "prefill":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=L.h != L.kvh)
        else:
            out = F.scaled_dot_product_attention(q, kc, vc, enable_gqa=L.h != L.kvh)
        return self.all_reduce(F.linear(out.transpose(1, 2).reshape(b, s, L.h * L.d), L.wo))

    def dense_mlp(self, L, x):
        return self.all_reduce(F.linear(F.silu(F.linear(x, L.wg)) * F.linear(x, L.wu), L.wd))

    def moe_mlp(self, L, x):
        b, s, H = x.shape
        flat = x.reshape(b * s, H)
        probs = torch.softmax(F.linear(flat, L.router).float(), dim=-1)
        weights, _ = torch.topk(probs, self.c["top_k"], dim=-1)          # computed; the assignment is fixed
        send = flat.index_select(0, self.send_token)
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send)                                # dispatch
        n, per, local = self.ctx.world, self.per, self.local
        grouped = recv.view(n, local, per, H)
        out = torch.empty_like(grouped)
        for e, (wg, wu, wd) in enumerate(L.experts):
            rows = grouped[:, e].reshape(n * per, H)
            out[:, e] = F.linear(F.silu(F.linear(rows, wg)) * F.linear(rows, wu), wd).view(n, per, H)
        back = torch.empty_like(send)
        dist.all_to_all_single(back, out.view(-1, H))                      # combine
        w = weights.to(x.dtype)[self.send_token, self.send_slot].unsqueeze(1)
        y = torch.zeros_like(flat).index_add_(0, self.send_token, back * w)
        return y.view(b, s, H)

    def embed_tokens(self):
        if self.tp > 1 and self.embedding == "vocab-parallel":
            local = self.ids - self.vocab_start
            inside = (local >= 0) & (local < self.embed.shape[0])
            x = F.embedding(local.clamp(0, self.embed.shape[0] - 1), self.embed) * inside.unsqueeze(-1).to(DTYPE)
            return self.all_reduce(x)
        return F.embedding(self.ids, self.embed)

    def step(self):
        c = self.c
        with torch.no_grad():
            x = self.embed_tokens()
            for L, cache in zip(self.layers, self.caches):
                x = x + self.attention(L, rms_norm(x, L.ln1, c["eps"]), cache)
                h = rms_norm(x, L.ln2, c["eps"])
                x = x + (self.moe_mlp(L, h) if self.parallel == "ep" else self.dense_mlp(L, h))
            x = rms_norm(x, self.norm, c["eps"])
            if self.phase == "prefill":
                x = x[:, -1:]
            logits = F.linear(x, self.head)                                   # [b, t, V/tp]
            if self.tp > 1:
                full = torch.empty(self.tp * logits.numel(), device=logits.device, dtype=logits.dtype)
                ALL_GATHER(full, logits.reshape(-1))
                logits = full.view((self.tp,) + tuple(logits.shape))              # [tp, b, t, V/tp]
            self.logits = logits


# --- timing -------------------------------------------------------------------------------------------------
def measure(ctx, model: Model, min_reps: int, min_time: float, power_s: float):
    """(median s per step, reps, energy J, sustained window s, sustained steps) on this rank."""
    for _ in range(2):
        model.step()
    ctx.sync()
    run = model.step
    if ctx.gpu:
        run = capture_graph(ctx, model.step)
        run()
        ctx.sync()
    timer, times, start = ctx.timer(), [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < 500):
        dist.barrier()
        ctx.sync()
        timer.start()
        run()
        times.append(timer.stop())
    median = statistics.median(times)
    energy, window, steps = None, 0.0, 0
    if power_s > 0 and ctx.nvml:
        count = max(1, int(power_s / max(median, 1e-6)))
        dist.barrier()
        ctx.sync()
        e0, t0 = ctx.energy_j(), time.perf_counter()
        for _ in range(count):
            run()
        ctx.sync()
        window, e1, steps = time.perf_counter() - t0, ctx.energy_j(), count
        energy = e1 - e0 if e0 is not None and e1 is not None else None
    return median, len(times), energy, window, steps


def shapes(text, default):
    """'BxS,BxS' -> [(B, S), ...] (default when not given)."""
    return [tuple(int(v) for v in x.split("x")) for x in text.split(",")] if text else default


def cases(phase_list, decode, prefill):
    return [(p, b, s) for p in phase_list for b, s in (decode if p == "decode" else prefill)]


def full_logits(model, per_rank):
    """The whole batch's logits [batch, tokens, vocab] from every rank's (check mode)."""
    if model.parallel == "ep":
        return torch.cat(per_rank, dim=0)
    x = per_rank[0]
    return x.permute(1, 2, 0, 3).reshape(x.shape[1], x.shape[2], -1) if model.tp > 1 else x


def check_case(ctx, model, key, found):
    """Run the step once and keep the whole batch's logits under key (rank 0)."""
    model.step()
    per_rank = ctx.gather(model.logits.float().cpu())
    if ctx.rank == 0:
        found[key] = full_logits(model, per_rank)


def worker(ctx, args):
    global DTYPE
    DTYPE = torch.float32 if args.check else torch.bfloat16
    t_start = time.perf_counter()
    found = {}
    if ctx.rank == 0:
        os.makedirs(args.out, exist_ok=True)
    dist.barrier()
    phases = args.phases.split(",")
    decode, prefill = shapes(args.decode, DECODE), shapes(args.prefill, PREFILL)
    moe_decode, moe_prefill = shapes(args.moe_decode, MOE_DECODE), shapes(args.moe_prefill, MOE_PREFILL)
    work = [(item, "tp", cases(phases, decode, prefill)) for item in args.models.split(",") if item]
    work += [(item, "ep", cases(phases, moe_decode, moe_prefill)) for item in args.moe.split(",") if item]
    environment(ctx, args.out, "benchmarks/gpu/measure_tp_steps.py",
                {"args": vars(args), "mode": "graph" if ctx.gpu else "eager",
                 "note": "TP = EP = world size; step_us = slowest rank's median; bf16 random weights"})
    w = Writer(args.out, "tp_steps.csv", FIELDS) if ctx.rank == 0 else None
    for item, parallel, todo in work:
        c = load_config(item, args.tiny)
        for phase, batch, seq in todo:
            if not ctx.agree(time.perf_counter() - t_start < args.budget):
                if ctx.rank == 0:
                    print(f"budget of {args.budget:.0f} s spent: stopping before {item} {phase} {batch}x{seq}",
                          flush=True)
                return
            status, result = "ok", (None, 0, None, 0.0, 0)
            try:
                model = Model(ctx, c, parallel, phase, batch, seq, args.embedding, seed=0 if args.check else None)
                if args.check:
                    check_case(ctx, model, f"{c['name']}/{phase}/{batch}x{seq}", found)
                    continue
                result = measure(ctx, model, args.min_reps, args.min_time, args.power_s if ctx.gpu else 0.0)
            except ValueError as exc:              # a shape this degree cannot split (same on every rank)
                status = f"skipped: {exc}".replace(",", ";")
            except torch.cuda.OutOfMemoryError:
                status = "out of memory"
            except RuntimeError as exc:
                status = f"error: {str(exc).splitlines()[0][:160]}".replace(",", ";")
            model = None
            if ctx.gpu:
                torch.cuda.empty_cache()
            per_rank = ctx.gather((result, status))
            if ctx.rank != 0:
                continue
            row = dict(backend=ctx.backend, world_size=ctx.world, model=c["name"], parallel=parallel,
                       degree=ctx.world, layers=c["layers"], config_layers=c["config_layers"], phase=phase,
                       batch=batch, seq_len=seq, embedding=args.embedding if parallel == "tp" else "replicated",
                       mode="graph" if ctx.gpu else "eager")
            bad = next((s for _, s in per_rank if s != "ok"), None)
            if bad:
                w.row(**row, status=bad)
                print(f"{c['name']} {parallel}{ctx.world} {phase} {batch}x{seq}: {bad}", flush=True)
                continue
            times = [res[0] for res, _ in per_rank]
            power, per_gpu = power_summary([(res[2], res[3]) for res, _ in per_rank])
            energies = [res[2] for res, _ in per_rank]
            steps = per_rank[0][0][4]
            per_step = f"{sum(energies) / steps:.4e}" if steps and all(e is not None for e in energies) else ""
            w.row(**row, step_us=f"{max(times) * 1e6:.2f}", step_us_fastest_rank=f"{min(times) * 1e6:.2f}",
                  reps=per_rank[0][0][1], power_w=power, power_w_per_gpu=per_gpu, energy_j_per_step=per_step,
                  sustain_s=f"{per_rank[0][0][3]:.2f}" if steps else "", status="ok")
            print(f"{c['name']}:{c['layers']} {parallel}{ctx.world} {phase} b={batch} s={seq}: "
                  f"{max(times) * 1e3:.3f} ms  {power or '-'} W", flush=True)
    if w:
        w.close()
    if found:
        torch.save(found, os.path.join(args.out, "check_logits.pt"))


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backend", default="nccl", choices=["nccl", "gloo"])
    ap.add_argument("--spawn", type=int, default=0, help="start N processes here (without torchrun)")
    ap.add_argument("--models", default=DENSE, help="dense zoo names for tensor parallelism, each optionally :LAYERS")
    ap.add_argument("--moe", default=MOE, help="MoE zoo names for expert parallelism ('' for none)")
    ap.add_argument("--phases", default="decode,prefill")
    ap.add_argument("--decode", help="BxCTX list for dense decode, e.g. 1x512,8x512")
    ap.add_argument("--prefill", help="BxPROMPT list for dense prefill")
    ap.add_argument("--moe-decode", help="BxCTX list for MoE decode")
    ap.add_argument("--moe-prefill", help="BxPROMPT list for MoE prefill")
    ap.add_argument("--embedding", default="vocab-parallel", choices=["vocab-parallel", "replicated"])
    ap.add_argument("--tiny", action="store_true", help="toy sizes of the same models (a CPU check, not data)")
    ap.add_argument("--check", action="store_true",
                    help="no timing: float32 weights drawn whole from one seed and cut per rank; writes each case's "
                         "full logits to check_logits.pt, to compare world sizes (a sharding check)")
    ap.add_argument("--min-reps", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--power-s", type=float, default=1.0, help="seconds of back-to-back replays for power (GPU)")
    ap.add_argument("--budget", type=float, default=480.0,
                    help="seconds; no case starts after this, so a time-limited run ends cleanly")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a collective may hang before it fails")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    launch(worker, args, args.backend, args.spawn, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
