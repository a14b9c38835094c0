"""The roofline report: PNG and self-contained HTML, rendered by a real headless browser."""
import os
import shutil
import subprocess
import sys

import pytest

from sim.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["roofline", "--model", "llama-3.1-8b", "--hardware", "h100", "--out-dir", str(out)]) == 0
    return out / "roofline-llama-3.1-8b.png", out / "roofline-llama-3.1-8b.html"


def test_png_and_html_written(report):
    png, page = report
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = page.read_text()
    assert "data:image/png;base64," in text and "per op" in text and "per layer group" in text
    assert "attn.core" in text and "prefill" in text and "decode" in text


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="chromium is not installed (.ci/install test installs it)")
def test_html_renders_the_chart_in_headless_chromium(report, tmp_path):
    assert CHROMIUM, "chromium missing: .ci/install test should have installed it"
    _, page = report
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert 'data-chart-rendered="yes"' in dom, "the page's script saw no decoded chart image"


def test_several_devices_side_by_side(tmp_path, capsys):
    assert main(["roofline", "--model", "qwen2.5-7b", "--hardware", "h100,a100", "--phases", "decode",
                 "--out-dir", str(tmp_path), "--json"]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    assert [d["hardware"] for d in doc["devices"]] == ["h100-sxm-80gb", "a100-80gb"]
    h100, a100 = (d["phases"]["decode"]["summary"]["latency_s"] for d in doc["devices"])
    assert a100 > h100


def test_model_that_does_not_fit_writes_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "roofline", "--model", "llama-3.1-405b", "--hardware",
                           "h100", "--out-dir", str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.returncode == 2 and "needs" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
