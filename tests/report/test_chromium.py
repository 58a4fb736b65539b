"""report.html in headless Chromium: every plot renders, the page logs nothing to the console, and the layout
holds at 1400x900: the summary (headline chart and claims) within the first screen, every image decoded,
nothing wider than the window.

Needs Debian's `chromium` package (`apt-get install chromium`); skipped where it is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from moeplace.cli import cli
from moeplace.costmodel.presets import PROFILE_PRESETS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install "
                                                          "chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("chromium")
    prof = PROFILE_PRESETS["seed"].model_dump(mode="json")
    (d / "hw.json").write_text(json.dumps({**prof, "name": "lab", "source": "calibrated"}))
    (d / "small.json").write_text(json.dumps({"preset": "seed", "name": "small", "num_nodes": 4}))
    out = d / "r"
    r = CliRunner().invoke(cli, ["compare", "--model", "examples/tiny.toml", "--profile", str(d / "hw.json"),
                                 "--cluster", str(d / "small.json"), "--work-limit", "100", "--context", "256",
                                 "--prefill-batch", "4", "--sweep", "batch=1,4", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out / "report.html"


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def test_every_plot_renders_without_console_errors(page, tmp_path):
    r = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    expected = page.read_text().count('<svg class="plot"')
    assert expected >= 10
    root = re.search(r"<html[^>]*>", r.stdout).group(0)
    assert f'data-plots-expected="{expected}"' in root, root
    assert f'data-plots-rendered="{expected}"' in root, root
    assert 'data-plots-failed=""' in root, root
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []


def _layout(page, tmp_path) -> dict[str, str]:
    r = _chromium(tmp_path, "--window-size=1400,900", "--hide-scrollbars", "--virtual-time-budget=5000", "--dump-dom",
                  page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    root = re.search(r"<html[^>]*>", r.stdout).group(0)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', root))


def test_layout_summary_on_the_first_screen_nothing_overflows(page, tmp_path):
    attrs = _layout(page, tmp_path)
    assert 0 < int(attrs["summary-bottom"]) <= 900, attrs
    assert attrs["overflow-x"] == "0", attrs
    assert attrs["images-decoded"] == attrs["images-expected"], attrs
    text = page.read_text()
    assert text.index('id="top-summary"') < text.index("<svg") < text.index('<td class="ok">' if '<td class="ok">' in
                                                                             text else '<td class="bad">')


def test_screenshot_is_drawn(page, tmp_path):
    shot = tmp_path / "shot.png"
    r = _chromium(tmp_path, "--window-size=1400,900", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000
    assert int.from_bytes(data[16:20], "big") == 1400 and int.from_bytes(data[20:24], "big") == 900
