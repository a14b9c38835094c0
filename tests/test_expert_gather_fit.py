"""benchmarks/gpu/fit_expert_gather.py: the repeat hit fraction of an expert-weight gather, on synthetic rows whose
time a known read pattern sets (distinct experts only, or every pair)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

from fit_expert_gather import hit_fraction, main  # noqa: E402

RATE = 3.0e12          # bytes per second a read+write copy attains in the row


def _row(pairs, distinct, read_slices, n=2816, k=2048):
    s = n * k * 2
    return {"E": 64, "N": n, "K": k, "pairs": pairs, "distinct": distinct, "order": "random",
            "index_s": (read_slices + pairs) * s / RATE, "copy_s": 2 * pairs * s / RATE, "copy_GBps": RATE / 1e9}


def test_distinct_reads_hit_every_repeat():
    assert abs(hit_fraction(_row(128, 55, 55)) - 1.0) < 1e-9


def test_every_pair_read_hits_none():
    assert abs(hit_fraction(_row(128, 55, 128))) < 1e-9


def test_half_of_repeats():
    assert abs(hit_fraction(_row(64, 40, 40 + 12)) - 0.5) < 1e-9


def test_no_repeats_has_no_fraction():
    assert hit_fraction(_row(4, 4, 4)) is None


def test_table_prints(tmp_path, capsys):
    import json
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (_row(128, 55, 55), _row(32, 25, 32))) + "\n")
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "repeat hit fraction" in out and "11.5 MB" in out
    assert main([]) == 2


def _gather_weight_bytes(experts, pairs, cls="weight"):
    torch = __import__("pytest").importorskip("torch")
    from workloads import trace_module

    class Gather(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.empty(experts, 64, 32, dtype=torch.bfloat16, device="meta"))

        def forward(self, idx, act):
            return (self.w if cls == "weight" else act)[idx]

    act = torch.empty(experts, 64, 32, dtype=torch.bfloat16, device="meta")
    g = trace_module(Gather(), torch.zeros(pairs, dtype=torch.long, device="meta"), act)
    k = g.ops[0].kernels[0]
    return k.bytes.get(cls, 0), 64 * 32 * 2


def test_traced_weight_gather_reads_each_distinct_expert_once():
    read, slice_b = _gather_weight_bytes(64, 128)
    assert read == int(slice_b * 64 * (1 - (1 - 1 / 64) ** 128))
    assert read < 128 * slice_b / 2


def _routed_gather_weight_bytes(experts, tokens, k):
    """A router's top-k picks gathering their experts' weights, as transformers' batched_mm experts do."""
    torch = __import__("pytest").importorskip("torch")
    from workloads import trace_module

    class Routed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.empty(experts, 64, 32, dtype=torch.bfloat16, device="meta"))

        def forward(self, logits):
            ids = torch.topk(logits, k, dim=-1).indices.reshape(-1)
            return self.w[ids]

    g = trace_module(Routed(), torch.empty(tokens, experts, device="meta"))
    gather = next(op for op in g.ops if any(kn.bytes.get("weight") for kn in op.kernels))
    return next(kn.bytes["weight"] for kn in gather.kernels if kn.bytes.get("weight")), 64 * 32 * 2


def test_traced_gather_of_top_k_picks_counts_a_tokens_picks_as_distinct():
    # one token's k picks never repeat: 2 of Mixtral's 8 experts at batch 1 are 2 distinct slices (independent
    # draws would expect 8 (1 - (7/8)^2) = 1.875); at 8 tokens E (1 - (1 - k/E)^8), as hwsim's `uniform` routing
    read, slice_b = _routed_gather_weight_bytes(8, 1, 2)
    assert read == 2 * slice_b
    read, slice_b = _routed_gather_weight_bytes(64, 8, 6)
    assert read == int(slice_b * 64 * (1 - (1 - 6 / 64) ** 8))
    assert read > int(slice_b * 64 * (1 - (1 - 1 / 64) ** 48))


def test_traced_gather_of_one_pair_or_of_activations_reads_every_row():
    read, slice_b = _gather_weight_bytes(64, 1)
    assert read == slice_b
    read, slice_b = _gather_weight_bytes(8, 16, cls="activation")
    assert read >= 16 * slice_b          # not routed weights: every pair's row is read (and its output written)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"E": 8}\n')
    assert main([str(bad)]) == 2
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"E": 8,\n')
    assert main([str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("fit_expert_gather.py: ") for line in err)
