"""SIGTERM and a second Ctrl-C during a solve keep the best plan; nothing temporary is left behind.

The solve runs in a child process whose progress callback prints one line the first time it is called, so
that the signal lands inside the search; the assertions are on files and exit codes, never on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

CHILD = r"""
import signal, sys
import moeplace.api as api
from moeplace.cli import main
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may inherit SIG_IGN
real = api.solve_request
def solve_request(req, progress=None):
    said = []
    def hook(info):
        if not said:
            said.append(1)
            print("PROGRESS", flush=True)
        if progress is not None:
            progress(info)
    return real(req, progress=hook)
import moeplace.commands.solve as cmd
cmd.solve_request = solve_request
main(sys.argv[1:])
"""

LONG = ["solve", "--nodes", "64", "--gpus-per-node", "8", "--experts-per-gpu", "4", "--work-limit", "1e12",
        "--time-limit", "3000", "-q"]


def solve_and_signal(out: Path, signals: list[int]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, *LONG, "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=out.parent)
    try:
        line = child.stdout.readline()
        assert line == "PROGRESS\n", child.stderr.read()
        for s in signals:
            child.send_signal(s)
        stdout, stderr = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def no_temporaries(parent: Path) -> None:
    assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("signals,reason", [([signal.SIGTERM], "terminated"),
                                            ([signal.SIGINT, signal.SIGINT], "interrupted"),
                                            ([signal.SIGTERM, signal.SIGTERM], "terminated")])
def test_a_signal_during_the_search_keeps_the_best_plan(tmp_path, signals, reason):
    out = tmp_path / "plan"
    r = solve_and_signal(out, signals)
    assert r.returncode == 0, r.stderr
    plan = json.loads((out / "plan.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert plan["solver"]["stop_reason"] == run["stop_reason"] == reason
    assert run["deterministic"] is False and plan["solver"]["reproducible"] is False
    assert (out / "job.sbatch").exists()
    no_temporaries(tmp_path)


def test_sigterm_before_the_search_writes_nothing_and_exits_143(tmp_path):
    out = tmp_path / "plan"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = ("import os, signal, sys\nimport moeplace.planner as p\nfrom moeplace.cli import main\n"
            "real = p.make_problem\n"
            "def make_problem(req):\n    os.kill(os.getpid(), signal.SIGTERM)\n    return real(req)\n"
            "p.make_problem = make_problem\nmain(sys.argv[1:])\n")
    r = subprocess.run([sys.executable, "-c", code, *LONG, "--out", str(out)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 143 and r.stderr.strip() == "error: terminated (SIGTERM)", r.stderr
    assert not out.exists()
    no_temporaries(tmp_path)
