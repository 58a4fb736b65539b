"""Nothing from an input becomes shell code: payloads through every input that reaches a launch script.

Each payload either is refused with one line and exit code 2, or the scripts it reaches pass `bash -n` and,
run with stub `srun`, `sbatch`, `torchrun` and python first on PATH, create no marker file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from moeplace.fileio import write_text
from moeplace.launch.render import render_launch, write_launch
from moeplace.placement.plan import plan_json
from tests.conftest import REPO
from tests.launch.plans import chain_plan
from tests.conftest import run_cli as run

TINY = REPO / "examples" / "tiny.toml"
SMALL = ["--nodes", "2", "--gpus-per-node", "16", "--work-limit", "300"]


def payloads(marker: Path) -> list[str]:
    m = str(marker)
    return [f"x\ntouch {m}\n#", f"$(touch {m})", f"`touch {m}`", f"x'; touch {m}; '", f'x"; touch {m}; "',
            f"x; touch {m}", "gpu001\n", f"x\rtouch {m}"]


def assert_refused(code, err):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def run_scripts(out: Path, marker: Path, host: str) -> None:
    """`bash -n` every script, then run each with stub launchers that only record their arguments."""
    stubs = out.parent / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in ("srun", "sbatch", "torchrun", "python3", "mpirun"):
        (stubs / name).write_text('#!/bin/sh\necho "$0 $*" >> "$STUB_LOG"\n')
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STUB_LOG": str(out.parent / "stub.log"),
           "SLURM_PROCID": "0", "SLURM_NTASKS": str(len((out / "hostfile").read_text().splitlines())),
           "SLURMD_NODENAME": host, "MOEPLACE_HOST": host, "SLURM_JOB_ID": "1", "MOEPLACE_DIR": str(out)}
    for script in ("job.sbatch", "torchrun.sh", "moeplace-rank.sh"):
        subprocess.run(["bash", "-n", str(out / script)], check=True)
        subprocess.run(["bash", str(out / script)], cwd=out, env=env, capture_output=True, timeout=60)
    assert not marker.exists()
    assert (out.parent / "stub.log").exists()  # the stubs ran: the scripts got as far as the launcher


def test_model_name_payloads_are_refused_by_solve(tmp_path, capsys):
    marker = tmp_path / "PWN"
    for i, name in enumerate(payloads(marker)):
        model = tmp_path / f"m{i}.toml"
        model.write_text(TINY.read_text().replace('name = "tiny"', f"name = {json.dumps(name)}"))
        code, _, err = run(["solve", "--model", str(model), *SMALL, "--out", str(tmp_path / f"o{i}")], capsys)
        if "\n" in name or "\r" in name:
            assert_refused(code, err)
            assert "control character" in err
        else:  # printable text: quoted out of the job name, inert in '#' lines
            assert code == 0, err
            run_scripts(tmp_path / f"o{i}", marker, "node001")
    assert not marker.exists()


def test_model_name_with_newline_stays_in_its_comment_line(tmp_path):
    """A Plan built past validation (the Python API) still cannot start a line of shell code."""
    marker = tmp_path / "PWN"
    plan = chain_plan()
    for name in payloads(marker):
        evil = plan.model_copy(update={"model": plan.model.model_copy(update={"name": name})})
        out = tmp_path / "launch"
        if out.exists():
            import shutil
            shutil.rmtree(out)
        out.mkdir()
        write_launch(out, render_launch(evil))
        for script in ("job.sbatch", "torchrun.sh", "moeplace-rank.sh"):
            text = (out / script).read_text()
            assert not any(line.startswith("touch") for line in text.splitlines())
            assert "\r" not in text
        run_scripts(out, marker, "node001")


def test_host_payloads_are_refused_from_hosts_option(tmp_path, capsys):
    marker = tmp_path / "PWN"
    for i, p in enumerate(payloads(marker)):
        code, _, err = run(["solve", "--model", str(TINY), *SMALL, "--no-emit", "--hosts", f"{p},gpu2",
                            "--out", str(tmp_path / f"o{i}")], capsys)
        assert_refused(code, err)
        assert "--hosts" in err or "hosts" in err
        assert not (tmp_path / f"o{i}").exists()


@pytest.mark.parametrize("option", ["--partition", "--account", "--job-name", "--time"])
def test_slurm_word_payloads_are_refused(option, tmp_path, capsys):
    plan = tmp_path / "p" / "plan.json"
    write_text(plan, plan_json(chain_plan()))
    for i, p in enumerate(payloads(tmp_path / "PWN")):
        code, _, err = run(["emit", str(plan), "--out", str(tmp_path / f"o{i}"), option, p], capsys)
        assert_refused(code, err)
        assert not (tmp_path / f"o{i}").exists()


def test_hand_edited_plan_payloads_are_refused_by_emit(tmp_path, capsys):
    marker = tmp_path / "PWN"
    good = json.loads(plan_json(chain_plan()))
    edits = []
    for p in payloads(marker):
        edits.append(lambda d, p=p: d["model"].__setitem__("name", p))
        edits.append(lambda d, p=p: d["cluster"].__setitem__("name", p))
        edits.append(lambda d, p=p: [q.__setitem__("host", p) for q in d["placements"] if q["node"] == 0])
    edits.append(lambda d: [q.__setitem__("host", "n" * 254) for q in d["placements"] if q["node"] == 0])
    edits.append(lambda d: [q.__setitem__("host", "n" * 64 + ".x") for q in d["placements"] if q["node"] == 0])
    for i, edit in enumerate(edits):
        d = json.loads(json.dumps(good))
        edit(d)
        plan = tmp_path / f"p{i}" / "plan.json"
        plan.parent.mkdir()
        plan.write_text(json.dumps(d))
        code, _, err = run(["emit", str(plan), "--out", str(tmp_path / f"o{i}")], capsys)
        name = d["model"]["name"] + d["cluster"]["name"]
        if code == 0:  # only printable names get through, and they are inert
            assert name.isprintable()
            run_scripts(tmp_path / f"o{i}", marker, d["placements"][0]["host"])
        else:
            assert_refused(code, err)
    assert not marker.exists()
