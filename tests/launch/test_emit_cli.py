"""`moeplace emit` and `solve` write the launch directory; refusals are one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moeplace.fileio import write_text
from moeplace.launch.check import check_dir
from moeplace.placement.plan import plan_json
from tests.conftest import REPO
from tests.launch.plans import chain_plan, make_plan
from tests.conftest import run_cli as run

TINY = str(REPO / "examples" / "tiny.toml")


@pytest.fixture
def plan_file(tmp_path) -> Path:
    path = tmp_path / "plan" / "plan.json"
    write_text(path, plan_json(chain_plan()))
    return path


def test_emit_writes_a_directory_that_checks(plan_file, tmp_path, capsys):
    out = tmp_path / "launch"
    code, stdout, err = run(["emit", str(plan_file.parent), "--out", str(out), "--partition", "batch"], capsys)
    assert code == 0, err
    assert " ".join(stdout.split()).startswith(f"wrote 12 launch files to {out} for plan ")
    assert (out / "plan.json").read_text() == plan_file.read_text()
    assert "#SBATCH --partition=batch\n" in (out / "job.sbatch").read_text()
    assert (out / "job.sbatch").stat().st_mode & 0o111 and not (out / "hostfile").stat().st_mode & 0o111
    assert check_dir(out).ok


def test_emit_refuses_an_existing_directory_without_force(plan_file, tmp_path, capsys):
    out = tmp_path / "launch"
    assert run(["emit", str(plan_file), "--out", str(out)], capsys)[0] == 0
    (out / "hostfile").write_text("edited\n")
    code, _, err = run(["emit", str(plan_file), "--out", str(out)], capsys)
    assert code == 2
    assert err == f"error: {out}: output directory exists and is not empty (use --force to replace it)\n"
    assert (out / "hostfile").read_text() == "edited\n"
    assert run(["emit", str(plan_file), "--out", str(out), "--force"], capsys)[0] == 0
    assert check_dir(out).ok


def test_emit_with_hosts_renames_every_file(plan_file, tmp_path, capsys):
    out = tmp_path / "launch"
    assert run(["emit", str(plan_file), "--out", str(out), "--hosts", "gpu[009-011]"], capsys)[0] == 0
    assert (out / "hostfile.deepspeed").read_text() == "gpu009 slots=3\ngpu010 slots=3\ngpu011 slots=3\n"
    assert json.loads((out / "manifest.json").read_text())["hosts"] == ["gpu009", "gpu010", "gpu011"]
    assert check_dir(out).ok


@pytest.mark.parametrize("args,message", [
    (["--hosts", "gpu[1-2]"], "error: --hosts: 'gpu[1-2]' names 2 hosts, the plan has 3 nodes\n"),
    (["--master-port", "70000"], "error: --master-port: Input should be less than 65536 (got 70000)\n"),
    (["--partition", "a b"], "error: --partition: Value error, 'a b' has characters a #SBATCH line cannot carry "
                             "(got 'a b')\n"),
])
def test_emit_option_errors(plan_file, tmp_path, capsys, args, message):
    code, _, err = run(["emit", str(plan_file), "--out", str(tmp_path / "x"), *args], capsys)
    assert (code, err) == (2, message)
    assert not (tmp_path / "x").exists()


def test_emit_records_the_plans_trace_relative_to_the_directory(tmp_path, capsys):
    trace = tmp_path / "data" / "trace.npz"
    trace.parent.mkdir()
    np.savez(trace, topk=np.zeros((4, 2, 2), dtype=np.int32))
    from moeplace.fileio import file_digest

    plan = make_plan(hosts=["n1"], gpus_per_node=8, rank_items={r: [divmod(r, 4)] for r in range(8)},
                     provenance={"source": "trace", "file": "trace.npz", "sha256": file_digest(str(trace))})
    write_text(tmp_path / "p" / "plan.json", plan_json(plan))
    out = tmp_path / "runs" / "launch"
    code, _, err = run(["emit", str(tmp_path / "p"), "--out", str(out), "--trace", str(trace)], capsys)
    assert code == 0, err
    routing = json.loads((out / "manifest.json").read_text())["routing"]
    assert (routing["kind"], routing["trace_file"]) == ("trace", "trace.npz")  # linked into the folder
    assert (out / "trace.npz").read_bytes() == trace.read_bytes()
    code, out_text, err = run(["check", str(out)], capsys)
    assert code == 0, out_text + err
    np.savez(trace, topk=np.ones((4, 2, 2), dtype=np.int32))
    code, _, err = run(["emit", str(tmp_path / "p"), "--out", str(out), "--force", "--trace", str(trace)], capsys)
    assert code == 2 and err.startswith(f"error: {trace}: --trace: sha256 differs from the plan's statistics")


def test_solve_writes_the_launch_files_unless_no_emit(tmp_path, capsys):
    small = ["--model", TINY, "--nodes", "2", "--gpus-per-node", "16", "--work-limit", "500"]
    code, out, err = run(["solve", *small, "--hosts", "gpu[1-2]", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    assert "wrote 12 launch files" in out
    assert (tmp_path / "a" / "hostfile").read_text() == "gpu1\n" * 16 + "gpu2\n" * 16
    assert check_dir(tmp_path / "a").ok
    code, out, err = run(["solve", *small, "--no-emit", "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["plan.json", "run.json"]
    assert "launch files" not in out


def test_placeholder_hosts_are_not_announced_as_ready(plan_file, tmp_path, capsys):
    out = tmp_path / "launch"
    code, stdout, err = run(["emit", str(plan_file.parent), "--out", f"{out}/"], capsys)
    assert code == 0, err
    text = " ".join(stdout.split())
    assert f"Slurm: NOT READY: node[001-003] are placeholder names, and job.sbatch refuses them; give the real " \
           f"hosts: moeplace emit {out} --out {out}-hosts --hosts 'HOSTLIST'" in text
    assert "sbatch job.sbatch" not in text and "//" not in text
    assert f"torchrun: on every host: {out}/torchrun.sh static" in text
    assert "warning: the plan's hosts node[001-003] are placeholders" in text
    assert check_dir(out).ok
    code, stdout, err = run(["emit", str(plan_file), "--out", str(tmp_path / "named"), "--hosts", "gpu[1-3]"], capsys)
    assert code == 0, err
    assert f"Slurm: cd {tmp_path / 'named'} && sbatch job.sbatch" in " ".join(stdout.split())
    assert "are placeholder" not in stdout and "NOT READY" not in stdout


def test_engine_refusal_gives_a_command_that_writes_the_engine_files(tmp_path, capsys):
    small = ["--model", TINY, "--nodes", "2", "--gpus-per-node", "16", "--work-limit", "500"]
    code, out, err = run(["solve", *small, "--hosts", "gpu[1-2]", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    reason = json.loads((tmp_path / "a" / "artifacts.json").read_text())["engines"]["sglang"]["not_written"]
    command = reason.split("plan an EP layout: ")[1]
    assert command.startswith("moeplace solve --model MODEL_FILE --flow ep --balance-per-layer --nodes ")
    argv = command.split()[2:]
    argv[argv.index("MODEL_FILE")] = TINY
    argv[argv.index("--hosts") + 1] = argv[argv.index("--hosts") + 1].strip("'")
    argv[argv.index("--out") + 1] = str(tmp_path / "ep")
    code, out, err = run(["solve", *argv, "--work-limit", "500"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "ep" / "artifacts.json").read_text())["engines"]["sglang"]["not_written"] is None
