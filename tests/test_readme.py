"""README as a script: every shell line is known, and the cheap ones run as written, in order (issue 17).

The whole README, slow and GPU lines included, runs with `python benchmarks/readme_check.py`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_check", ROOT / "benchmarks" / "readme_check.py")
readme_check = importlib.util.module_from_spec(_spec)
sys.modules["readme_check"] = readme_check
_spec.loader.exec_module(readme_check)


def test_the_install_line_runs_the_main_job_and_every_line_has_a_kind():
    lines = readme_check.readme_lines()
    assert lines[0].kind == "install"
    assert lines[0].command == "moeplace solve --topology fat-tree --out plan/"
    assert lines[1].command == "python -m pytest -q"
    kinds = {ln.kind for ln in lines}
    assert kinds <= {"install", "tests", "gpu", "slurm", "slow", "cheap"}
    assert sum(ln.kind == "cheap" for ln in lines) >= 20


def test_outputs_are_distinct_directories():
    """No line writes into an --out directory an earlier line already filled (solve refuses a non-empty one)."""
    import re

    outs = [m.group(1) for ln in readme_check.readme_lines()
            for m in [re.search(r"^moeplace (?:solve|emit|compare)\b.*--out (\S+)", ln.command)] if m]
    assert len(outs) == len(set(outs)), outs


def test_every_file_a_line_reads_exists_or_is_written_before(tmp_path):
    """Every examples/ path the README names is in the repository."""
    import re

    for ln in readme_check.readme_lines():
        for path in re.findall(r"\bexamples/[\w./+-]+", ln.command):
            assert (ROOT / path).exists(), f"README line {ln.number}: {path}"


def test_the_cheap_lines_run_as_written(tmp_path, capsys):
    rc = readme_check.main(["--only", "cheap", "--keep", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "0 failed" in out
    assert (tmp_path / "work" / "plan" / "plan.json").is_file()
    assert (tmp_path / "work" / "ep-engines" / "engines").is_dir()
