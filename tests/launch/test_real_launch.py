"""The generated launch files, run for real: a local Slurm (sbatch -> srun -> wrapper -> worker) and torchrun.

Both start the bundled runtime on CPU (gloo) for a plan of 1 node x 4 ranks whose host is this machine, and
assert that the launcher succeeded and that every rank ran on its planned host and GPU slot with its planned
experts (from the worker's ranks/rank-NNNNN.json). The Slurm test uses a running Slurm, or starts one with
.ci/slurm-setup.sh when it can (root, slurm-wlm installed), and otherwise skips saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moeplace.launch.check import check_dir
from moeplace.launch.layout import plan_layout
from moeplace.launch.options import EmitOptions
from moeplace.launch.render import render_launch, write_launch
from tests.conftest import REPO
from tests.launch.plans import local_plan

pytest.importorskip("torch", reason="the runtime worker these launches start needs PyTorch: "
                                    "pip install -e '.[runtime]'")
pytestmark = pytest.mark.slow
WORKER_ARGS = ["--steps", "2", "--warmup", "1", "--device", "cpu"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def short_hostname() -> str:
    return subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()


def emit_local(tmp_path: Path, host: str) -> tuple[Path, object]:
    plan = local_plan(host, gpus=4)
    d = tmp_path / "launch"
    d.mkdir()
    write_launch(d, render_launch(plan, EmitOptions(master_port=free_port(), rdzv_port=free_port())))
    assert check_dir(d).ok
    return d, plan


def assert_every_rank_ran_its_experts(run_dir: Path, plan) -> None:
    layout = plan_layout(plan)
    for row in layout.rows:
        path = run_dir / "ranks" / f"rank-{row.rank:05d}.json"
        assert path.is_file(), f"rank {row.rank} wrote nothing ({path})"
        got = json.loads(path.read_text())
        assert got["status"] == "ok" and got["rank"] == row.rank
        assert (got["host"].split(".")[0], got["local_gpu"]) == (row.host, row.local_gpu)
        assert [(e["layer"], e["expert"], e["replica"]) for e in got["experts"]] == \
            [(s.layer, s.expert, s.replica) for s in row.slots]
        assert got["steps"] == 2 and got["device"].startswith("cpu")
    assert (run_dir / "measured.json").is_file()


def slurm_node() -> str:
    """This host's Slurm node name, starting the local Slurm if this machine can; skips (with the reason) if not."""
    host = short_hostname()
    if shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0:
        nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()
        if host not in nodes:
            pytest.skip(f"a Slurm is running but has no node named {host} (nodes: {' '.join(nodes[:5])})")
        state = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%t"], capture_output=True, text=True).stdout
        if state.strip().rstrip("*~#") in ("idle", "mix", "alloc", "comp") or os.geteuid() != 0:
            return host
    elif os.geteuid() != 0:
        pytest.skip("no Slurm is running and starting one needs root: run .ci/slurm-setup.sh as root")
    elif not shutil.which("apt-get") and not (shutil.which("slurmctld") and shutil.which("slurmd")):
        pytest.skip("no Slurm is running, slurm-wlm is not installed and apt-get is not available")
    proc = subprocess.run(["bash", str(REPO / ".ci" / "slurm-setup.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f".ci/slurm-setup.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return host


def wait_for_job(job: str, timeout_s: float = 300.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
        fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        if fields.get("JobState") in TERMINAL:
            return fields
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job], capture_output=True)
            pytest.fail(f"Slurm job {job} not finished after {timeout_s:.0f} s (state {fields.get('JobState')})")
        time.sleep(0.5)


def test_sbatch_runs_every_rank_on_its_planned_gpu(tmp_path):
    host = slurm_node()
    d, plan = emit_local(tmp_path, host)
    env = {**os.environ, "MOEPLACE_PYTHON": sys.executable}
    sub = subprocess.run(["sbatch", "--parsable", "job.sbatch", *WORKER_ARGS], cwd=d, env=env, capture_output=True,
                         text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    fields = wait_for_job(job)
    log = (d / f"moeplace-{job}.out")
    text = log.read_text() if log.exists() else "(no output file)"
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), text
    assert_every_rank_ran_its_experts(d / "runs" / f"slurm-{job}", plan)


@pytest.mark.parametrize("mode", ["static", "c10d"])
def test_torchrun_runs_every_rank_on_its_planned_gpu(tmp_path, mode):
    d, plan = emit_local(tmp_path, short_hostname())
    env = {**os.environ, "TORCHRUN": f"{sys.executable} -m torch.distributed.run"}
    env.pop("MOEPLACE_HOST", None)
    proc = subprocess.run([str(d / "torchrun.sh"), mode, *WORKER_ARGS], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_every_rank_ran_its_experts(d / "runs" / f"torchrun-{mode}", plan)
