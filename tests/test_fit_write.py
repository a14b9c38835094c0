"""benchmarks/gpu/fit.py --write rewrites a preset's calibration block without dropping what other fits wrote."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

import fit  # noqa: E402


def test_calibration_text_keeps_other_fits_and_drops_fully_rewritten_groups():
    text = ("id: x\nname: X\n\ncalibration:\n  source: \"old\"\n  params:\n    mm_eff: 0.8\n    bw_eff: 0.9\n"
            "    # power: static_w, gamma by fit_power.py\n    static_w: 100.0\n    gamma: 1.0\n"
            "    # stack kernels: paged_bw_eff by fit_stack.py\n    paged_bw_eff: 0.91\n")
    out = fit.calibration_text(text, ["calibration:", "  source: \"new\""], {"mm_eff": 0.85, "paged_bw_eff": 0.5})
    assert out.startswith("id: x\nname: X\n\ncalibration:\n  source: \"new\"\n  params:\n")
    body = out.split("  params:\n")[1]
    assert "mm_eff: 0.85" in body and "mm_eff: 0.8\n" not in body
    assert "bw_eff: 0.9" in body and "static_w: 100.0" in body and "gamma: 1.0" in body
    assert "# power: static_w, gamma by fit_power.py" in body          # its parameters are kept
    assert "paged_bw_eff: 0.5" in body and "paged_bw_eff: 0.91" not in body
    assert "# stack kernels" not in body                               # all of its group rewritten
    assert "source: \"old\"" not in out


def test_calibration_text_on_the_h200_preset_keeps_every_parameter():
    text = (ROOT / "hw_models" / "presets" / "h200-141gb.yaml").read_text()
    out = fit.calibration_text(text, ["calibration:", "  source: \"x\""], {"mm_eff": 0.9})
    old_keys = {ln.split(":")[0].strip() for ln in text.split("  params:\n")[1].splitlines()
                if ln.startswith("    ") and not ln.strip().startswith("#")}
    new_keys = {ln.split(":")[0].strip() for ln in out.split("  params:\n")[1].splitlines()
                if ln.startswith("    ") and not ln.strip().startswith("#")}
    assert old_keys == new_keys


def test_fit_stack_with_a_device_reads_only_that_gpus_folders_unless_named():
    """fit_stack.py --device h100 (no --data) fits on the H100's stack folders only: the H200's rows priced with the
    H100 preset proposed H200 numbers that --write would have put into the H100 preset. A folder named with --data
    is still priced with the named preset (a transfer on purpose)."""
    import fit_stack
    h100 = fit_stack.datasets(None, "h100")
    assert h100 and all(p == "h100" and "h200" not in f.name for f, p in h100)
    assert all("h200" in f.name for f, _ in fit_stack.datasets(None, "h200"))
    both = fit_stack.datasets(None, None)
    assert {p for _, p in both} == {"h100", "h200"}
    h200_folder = next(f for f, p in both if p == "h200")
    assert fit_stack.datasets([h200_folder], "h100") == [(h200_folder, "h100")]


def test_fit_power_write_names_calibration_and_held_out_runs(tmp_path, monkeypatch):
    """fit_power.py --write's comment says which runs fitted the terms and which were held out (the 70B shard runs
    are held out by fit(); the comment had named them among the fitted sets), with both MAPEs."""
    import fit_power
    from hw_models import load_device
    import hw_models.presets as presets
    device = load_device("h100")
    preset = tmp_path / "h100.yaml"
    preset.write_text("id: h100-sxm-80gb\nname: H\ncalibration:\n  params:\n    mm_eff: 0.9\n"
                      "    # power: static_w by someone\n    static_w: 100.0\n")
    monkeypatch.setattr(presets, "alias_table", lambda: {"h100-sxm-80gb": preset})
    best = (0.5, {"static_w": 130.0, "e_flop_pj": 0.95, "gamma": 0.5}, (2.2, 1.6, 1.1), (5.6, 3.7, 2.7))
    fit_power.write(device, best, ["h100-2026-12-06-random-ids", "h100-sxm-2026-11-24-power-shard"],
                    " --random-ids")
    body = preset.read_text()
    note = next(ln for ln in body.splitlines() if ln.strip().startswith("# power:"))
    assert "fit_power.py --random-ids on the sustained GEMM runs" in note
    assert "of h100-2026-12-06-random-ids (NVML" in note
    assert "held out: the other models' steps and the 70B TP4 shard runs of h100-sxm-2026-11-24-power-shard" in note
    assert "2.2/1.6/1.1%" in note and "held out 5.6/3.7/2.7%" in note
    assert "static_w: 130.0" in body and "static_w: 100.0" not in body and "mm_eff: 0.9" in body
    assert "by someone" not in body
