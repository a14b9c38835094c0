"""benchmarks/gpu/fit_attn_steps.py (the H100's joint refit of the causal-tile model with the step floors): what it
would write leaves a loadable preset with the fitted numbers and every other parameter, and the rows' replay
nuisance is added to the kernel rows' prediction only (never written)."""
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

import fit_attn_steps as F  # noqa: E402
from hw_models import load_device  # noqa: E402


def _params(text):
    return yaml.safe_load(text)["calibration"]["params"]


def test_preset_with_writes_the_group_and_the_floors_and_keeps_the_rest():
    device = load_device("h100")
    before = _params(F.preset_with(device, {}))
    cand = {"attn_causal_tile": 128, "attn_causal_eff": 0.6, "attn_causal_floor_us": 2.5, "attn_causal_wave_us": 0.5,
            "kernel_floor_us": 2.1, "attn_floor_us": 6.0, "replay_us": 4.5}
    text = F.preset_with(device, cand)
    after = _params(text)
    assert "replay_us" not in after and "replay_us" not in text
    assert {k: after[k] for k in cand if k != "replay_us"} == {k: v for k, v in cand.items() if k != "replay_us"}
    assert {k: v for k, v in after.items() if k not in cand} == {k: v for k, v in before.items() if k not in cand}
    assert "fit_attn_steps.py" in text


def test_replay_is_added_to_the_kernel_rows_only():
    device = load_device("h100")
    rows = [r for r in F.kernel_rows() if int(r["d"]) == 128]
    plain = F.kernel_errors(device, {}, "calibration")
    with_replay = F.kernel_errors(device, {}, "calibration", replay_us=4.0)
    cal = [r for r in rows if F.fit_stack.prefill_split(r) == "calibration"]
    assert len(plain) == len(cal) > 0
    for a, b, r in zip(plain, with_replay, cal):
        assert abs(b - a - 4.0e-6 / float(r["seconds"])) < 1e-12


def test_as_timed_objective_reads_calibration_data_only(monkeypatch):
    """--as-timed: fit.py's calibration models' steps (its data and the two random-id leases) and the stack's
    calibration rows as timed (no replay added); no held-out model or row enters the objective."""
    device = load_device("h100")
    seen_steps, seen_rows = [], []
    real_steps, real_kernel = F.step_errors, F.kernel_mape

    def steps(dev, params, folder, models=None):
        seen_steps.append((folder.name, models))
        return real_steps(dev, params, folder, models)

    def kernel(dev, params, which, d=128, replay_us=0.0):
        seen_rows.append((which, d, replay_us))
        return real_kernel(dev, params, which, d, replay_us)

    monkeypatch.setattr(F, "step_errors", steps)
    monkeypatch.setattr(F, "kernel_mape", kernel)
    j = F.objective_as_timed(device, {"attn_causal_tile": 128, "attn_causal_eff": 0.6, "attn_causal_floor_us": 7.5})
    assert j > 0
    assert {name for name, _ in seen_steps} == {F.FIT_DATA.name, *F.AS_TIMED_STEPS}
    assert all(models == F.TRAINING_MODELS for _, models in seen_steps)
    assert seen_rows == [("calibration", 128, 0.0)]
    # and the rows it sees are calibration rows only
    assert all(F.fit_stack.prefill_split(r) == "calibration" for _, _, r in
               F.fit_stack.prefill_errors(device, [r for r in F.kernel_rows() if int(r["d"]) == 128], {}, "calibration"))
