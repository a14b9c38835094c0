"""measure_stack.py --parts moegrid (the MoE per-expert loop grid): the cases it measures, its routing (every active
expert the same rows), and the loop it times against a dense reference, on the CPU."""
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))


def test_cases_cover_the_grid_and_quick_is_a_few_points():
    from measure_stack import MOEGRID_EXPERTS, MOEGRID_ROWS, MOEGRID_SHAPES, moegrid_cases, moegrid_rows
    full = moegrid_cases(False)
    assert {(h, f) for h, f, _, _ in full} == set(MOEGRID_SHAPES)
    assert {n for _, _, n, _ in full} == set(MOEGRID_EXPERTS) == {1, 4, 16}
    assert len(full) * len(moegrid_rows(False)) == 5 * 3 * 8
    assert list(moegrid_rows(False)) == MOEGRID_ROWS
    assert len(moegrid_cases(True)) * len(moegrid_rows(True)) <= 4


@pytest.mark.parametrize("n,k,rows", [(1, 1, 1), (1, 1, 32), (4, 2, 1), (4, 2, 8), (16, 2, 1), (16, 2, 64)])
def test_routing_gives_every_expert_the_same_rows(n, k, rows):
    from measure_stack import moegrid_routing
    T, tok_of, counts, bounds = moegrid_routing(n, k, rows)
    assert counts == [rows] * n and bounds[-1] == T * k == n * rows
    for i in range(n):                    # an expert's rows are distinct tokens
        toks = tok_of[bounds[i]:bounds[i + 1]].tolist()
        assert len(set(toks)) == rows and all(0 <= t < T for t in toks)


def test_weight_copies_cover_four_l2s_unless_one_set_does():
    from measure_stack import moegrid_sets
    l2 = 50 * 2 ** 20
    small = 3 * 2048 * 1408 * 2                          # one small expert: 17 MB
    assert moegrid_sets(small, l2) == 8                  # capped
    n = moegrid_sets(4 * small, l2)
    assert n * 4 * small > 3 * l2 and n > 1
    assert moegrid_sets(16 * 3 * 4096 * 3584 * 2, l2) == 1


@pytest.mark.parametrize("n,k,rows,copy", [(1, 1, 3, 1), (4, 2, 2, 0), (4, 2, 2, 2)])
def test_loop_is_the_moe_layer(n, k, rows, copy):
    """the grid's loop over weight copy `copy` (experts copy*n .. copy*n+n-1 of the bank) equals the dense
    reference: y[t] = sum over t's experts e of gate * down_e(silu(gate_e x) * up_e x)"""
    from measure_stack import moe_loop, moegrid_routing, routing
    torch.manual_seed(0)
    H, F_, sets = 64, 48, 3
    w13 = torch.randn(sets * n, 2 * F_, H, dtype=torch.bfloat16) * 0.1
    w2 = torch.randn(sets * n, H, F_, dtype=torch.bfloat16) * 0.1
    T, tok_of, counts, bounds = moegrid_routing(n, k, rows)
    x = torch.randn(T, H, dtype=torch.bfloat16)
    gate_w = torch.rand(T * k, 1, dtype=torch.bfloat16)
    y = moe_loop(x, w13, w2, F_, range(copy * n, (copy + 1) * n), counts, bounds, tok_of, gate_w)()
    ids = routing("uniform", T, n, k, None)
    order = torch.argsort(ids.flatten(), stable=True)
    pos = torch.empty_like(order)
    pos[order] = torch.arange(order.numel())            # permuted row of (token, slot)
    ref = torch.zeros(T, H)
    for t in range(T):
        for j in range(k):
            e = copy * n + int(ids[t, j])
            xe = x[t].float()
            g, u = w13[e, :F_].float() @ xe, w13[e, F_:].float() @ xe
            ref[t] += float(gate_w[pos[t * k + j], 0]) * (w2[e].float() @ (torch.nn.functional.silu(g) * u))
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), ref, atol=3e-2, rtol=3e-2), (y.float() - ref).abs().max()
    if hasattr(torch, "_grouped_mm"):     # the grouped rows' op sequence over the same weight copy
        from measure_stack import moe_grouped
        offs = torch.tensor(bounds[1:], dtype=torch.int32)
        try:
            yg = moe_grouped(x, w13[copy * n:(copy + 1) * n].transpose(1, 2),
                             w2[copy * n:(copy + 1) * n].transpose(1, 2), F_, offs, tok_of, gate_w)()
        except (RuntimeError, NotImplementedError):
            return                        # no CPU grouped GEMM in this torch
        assert torch.allclose(yg.float(), ref, atol=3e-2, rtol=3e-2), (yg.float() - ref).abs().max()


def test_parts_parse():
    script = str(ROOT / "benchmarks" / "gpu" / "measure_stack.py")
    out = subprocess.run([sys.executable, script, "--out", "/nonexistent", "--parts", "router,moegrid,nosuchpart"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "unknown nosuchpart;" in out.stderr, out.stderr
    import measure_stack
    assert "moegrid" in measure_stack.PARTS and "moegrid-wide" in measure_stack.PARTS
    helptext = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True).stdout
    assert "--parts moegrid" in helptext and "(--parts moegrid only, not in the default list)" in helptext


def test_wide_cases_reach_past_the_grid_and_empty_groups():
    from measure_stack import MOEGRID_ROWS, MOEWIDE_SHAPES, moegrid_wide_cases
    full = moegrid_wide_cases(False)
    wide = [c for c in full if c[2] == c[3]]
    empty = [c for c in full if c[2] > c[3]]
    assert {(h, f) for h, f, *_ in wide} == set(MOEWIDE_SHAPES)
    assert min(r for *_, r in wide) > max(MOEGRID_ROWS)            # beyond the grid's rows per expert
    assert {g for _, _, g, *_ in empty} >= {64} and max(r for *_, r in empty) <= 64
    for h, f, g, n, k, rows in full:
        assert n * rows % k == 0 and k == (1 if n == 1 else 2)
    assert len(moegrid_wide_cases(True)) <= 4


@pytest.mark.parametrize("groups,n,k,rows", [(8, 1, 1, 2), (6, 4, 2, 1)])
def test_grouped_with_empty_groups_is_the_moe_layer(groups, n, k, rows):
    """moegrid-wide's grouped call with groups - n empty groups after the n active ones (offsets repeating the last
    end) gives the same layer as the n groups alone"""
    if not hasattr(torch, "_grouped_mm"):
        pytest.skip("no torch._grouped_mm")
    from measure_stack import moe_grouped, moegrid_routing
    torch.manual_seed(0)
    H, F_ = 64, 48
    w13 = torch.randn(groups, 2 * F_, H, dtype=torch.bfloat16) * 0.1
    w2 = torch.randn(groups, H, F_, dtype=torch.bfloat16) * 0.1
    T, tok_of, counts, bounds = moegrid_routing(n, k, rows)
    x = torch.randn(T, H, dtype=torch.bfloat16)
    gate_w = torch.rand(T * k, 1, dtype=torch.bfloat16)
    try:
        ref = moe_grouped(x, w13[:n].transpose(1, 2), w2[:n].transpose(1, 2), F_,
                          torch.tensor(bounds[1:], dtype=torch.int32), tok_of, gate_w)()
        got = moe_grouped(x, w13.transpose(1, 2), w2.transpose(1, 2), F_,
                          torch.tensor(bounds[1:] + [bounds[-1]] * (groups - n), dtype=torch.int32), tok_of, gate_w)()
    except (RuntimeError, NotImplementedError):
        pytest.skip("no CPU grouped GEMM in this torch")
    assert torch.allclose(got.float(), ref.float(), atol=1e-2), (got.float() - ref.float()).abs().max()
