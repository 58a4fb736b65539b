"""The generated shell scripts, run by bash with a recording stand-in for the launcher and the interpreter.

The stand-in records its arguments and environment, so these tests check what the wrapper and torchrun.sh
hand to the worker (rank, GPU pinning, rendezvous) and their refusals, without Slurm or torch.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from moeplace.launch.options import EmitOptions
from moeplace.launch.render import render_launch, write_launch
from tests.launch.plans import chain_plan

RECORDER = """#!/usr/bin/env bash
python3 - "$@" <<'PY'
import json, os, sys
keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES", "MOEPLACE_HOST", "MASTER_ADDR", "MASTER_PORT")
with open(os.environ["RECORD"], "w") as fh:
    json.dump({"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in keys}}, fh)
PY
"""


@pytest.fixture
def emitted(tmp_path) -> Path:
    d = tmp_path / "launch"
    d.mkdir()
    write_launch(d, render_launch(chain_plan(), EmitOptions(master_port=29511)))
    rec = tmp_path / "record.sh"
    rec.write_text(RECORDER)
    rec.chmod(0o755)
    return d


def run(script: Path, args: list[str], tmp_path: Path, **env: str) -> tuple[int, str, dict | None]:
    record = tmp_path / "record.json"
    record.unlink(missing_ok=True)
    full = {"PATH": os.environ["PATH"], "RECORD": str(record), **env}
    proc = subprocess.run(["bash", str(script), *args], env=full, capture_output=True, text=True, timeout=60)
    data = json.loads(record.read_text()) if record.exists() else None
    return proc.returncode, proc.stderr, data


def test_wrapper_pins_the_planned_gpu_and_rank(emitted, tmp_path):
    code, err, rec = run(emitted / "moeplace-rank.sh", ["--steps", "2"], tmp_path, SLURM_PROCID="5",
                         SLURM_NTASKS="9", SLURMD_NODENAME="node002", MOEPLACE_PYTHON=str(tmp_path / "record.sh"))
    assert code == 0, err
    assert rec["env"] == {"RANK": "5", "WORLD_SIZE": "9", "LOCAL_RANK": "2", "CUDA_VISIBLE_DEVICES": "2",
                          "MOEPLACE_HOST": "node002", "MASTER_ADDR": "node001", "MASTER_PORT": "29511"}
    assert rec["argv"] == ["-m", "moeplace.runtime.worker", "--manifest", str(emitted / "manifest.json"),
                           "--out", str(emitted / "runs" / "wrapper"), "--steps", "2"]


def test_wrapper_reads_open_mpi_ranks(emitted, tmp_path):
    code, err, rec = run(emitted / "moeplace-rank.sh", [], tmp_path, OMPI_COMM_WORLD_RANK="8",
                         OMPI_COMM_WORLD_SIZE="9", MOEPLACE_PYTHON=str(tmp_path / "record.sh"),
                         SLURMD_NODENAME="node003.cluster.example")
    assert code == 0, err
    assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "2" and rec["env"]["MOEPLACE_HOST"] == "node003"


def test_wrapper_refuses_a_host_the_plan_did_not_give_the_rank(emitted, tmp_path):
    code, err, rec = run(emitted / "moeplace-rank.sh", [], tmp_path, SLURM_PROCID="5", SLURM_NTASKS="9",
                         SLURMD_NODENAME="node001", MOEPLACE_PYTHON=str(tmp_path / "record.sh"))
    assert code == 3 and rec is None
    assert err.strip() == ("moeplace-rank.sh: rank 5: planned on node002 GPU 2 but started on node001: launch with "
                           "SLURM_HOSTFILE=hostfile and srun --distribution=arbitrary (job.sbatch)")


def test_wrapper_refuses_a_wrong_task_count(emitted, tmp_path):
    code, err, _ = run(emitted / "moeplace-rank.sh", [], tmp_path, SLURM_PROCID="0", SLURM_NTASKS="8",
                       SLURMD_NODENAME="node001")
    assert code == 3
    assert err.strip() == "moeplace-rank.sh: rank 0: started with 8 tasks, the plan has 9 ranks"


def test_torchrun_static_gives_each_host_its_node_rank(emitted, tmp_path):
    code, err, rec = run(emitted / "torchrun.sh", ["static", "--steps", "3"], tmp_path, MOEPLACE_HOST="node002",
                         TORCHRUN=str(tmp_path / "record.sh"))
    assert code == 0, err
    assert rec["argv"] == ["--nnodes=3", "--nproc-per-node=3", "--node-rank=1", "--master-addr=node001",
                           "--master-port=29511", "-m", "moeplace.runtime.worker", "--manifest",
                           str(emitted / "manifest.json"), "--out", str(emitted / "runs" / "torchrun-static"),
                           "--steps", "3"]
    assert rec["env"]["MOEPLACE_HOST"] == "node002"


def test_torchrun_c10d_is_the_same_command_on_every_host(emitted, tmp_path):
    argvs = []
    for host in ("node001", "node003"):
        code, err, rec = run(emitted / "torchrun.sh", ["c10d"], tmp_path, MOEPLACE_HOST=host,
                             TORCHRUN=str(tmp_path / "record.sh"))
        assert code == 0, err
        argvs.append(rec["argv"])
    assert argvs[0] == argvs[1]
    assert "--rdzv-backend=c10d" in argvs[0] and "--rdzv-endpoint=node001:29400" in argvs[0]


@pytest.mark.parametrize("mode,host,message", [
    ("static", "node009", "torchrun.sh: host node009 is not in the plan (node[001-003]); set MOEPLACE_HOST"),
    ("c10d", "node009", "torchrun.sh: host node009 is not in the plan (node[001-003]); set MOEPLACE_HOST"),
    ("elastic", "node001", "torchrun.sh: MODE must be static or c10d, got elastic"),
])
def test_torchrun_refusals(emitted, tmp_path, mode, host, message):
    code, err, rec = run(emitted / "torchrun.sh", [mode], tmp_path, MOEPLACE_HOST=host,
                         TORCHRUN=str(tmp_path / "record.sh"))
    assert (code, err.strip(), rec) == (3, message, None)


def test_sbatch_refuses_to_run_outside_the_emitted_directory(emitted, tmp_path):
    code, err, _ = run(emitted / "job.sbatch", [], tmp_path, SLURM_SUBMIT_DIR=str(tmp_path), SLURM_JOB_ID="7")
    assert code == 3
    assert err.strip() == (f"job.sbatch: no manifest.json in {tmp_path}: submit from the emitted directory or "
                           "set MOEPLACE_DIR")


PLACEHOLDER_REFUSAL = ("job.sbatch: the plan's hosts node[001-003] are placeholders, not known hosts of this cluster: "
                       "re-emit with real names (moeplace emit PLAN --out DIR --hosts HOSTLIST) or set "
                       "MOEPLACE_ALLOW_PLACEHOLDER_HOSTS=1")


def _fake_srun(tmp_path: Path) -> str:
    """A PATH whose `srun` is the recording stand-in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(RECORDER)
    (bin_dir / "srun").chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def test_sbatch_refuses_placeholder_hosts_in_one_line(emitted, tmp_path):
    code, err, rec = run(emitted / "job.sbatch", [], tmp_path, SLURM_SUBMIT_DIR=str(emitted), SLURM_JOB_ID="7",
                         PATH=_fake_srun(tmp_path))
    assert (code, err, rec) == (3, PLACEHOLDER_REFUSAL + "\n", None)


def test_sbatch_runs_placeholder_hosts_when_allowed(emitted, tmp_path):
    code, err, rec = run(emitted / "job.sbatch", ["--steps", "2"], tmp_path, SLURM_SUBMIT_DIR=str(emitted),
                         SLURM_JOB_ID="7", PATH=_fake_srun(tmp_path), MOEPLACE_ALLOW_PLACEHOLDER_HOSTS="1")
    assert code == 0, err
    assert rec["argv"][:2] == ["--distribution=arbitrary", "--ntasks=9"] and rec["argv"][-2:] == ["--steps", "2"]


def test_sbatch_runs_a_plan_given_real_hosts(tmp_path):
    d = tmp_path / "real"
    d.mkdir()
    write_launch(d, render_launch(chain_plan(["gpu1", "gpu2", "gpu3"])))
    assert "PLACEHOLDER" not in (d / "job.sbatch").read_text()
    code, err, rec = run(d / "job.sbatch", [], tmp_path, SLURM_SUBMIT_DIR=str(d), SLURM_JOB_ID="7",
                         PATH=_fake_srun(tmp_path))
    assert code == 0 and rec is not None, err
