"""`atomic_dir` claims the output directory: replaced only with force, never when another process took it."""

from __future__ import annotations

import os

import pytest

import moeplace.commands.solve as solve_cmd
from moeplace.errors import InputError
from moeplace.fileio import atomic_dir
from tests.conftest import REPO
from tests.conftest import run_cli as run

TINY = str(REPO / "examples" / "tiny.toml")
SMALL = ["--model", TINY, "--nodes", "2", "--gpus-per-node", "16", "--work-limit", "300"]


def hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_directory_filled_during_the_run_is_left_alone(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as exc:
        with atomic_dir(out) as tmp:
            (tmp / "plan.json").write_text("new\n")
            (out / "notes.txt").write_text("mine\n")  # someone else, during the solve
    assert (out / "notes.txt").read_text() == "mine\n" and sorted(os.listdir(out)) == ["notes.txt"]
    kept = tmp_path / f"out.new-{os.getpid()}"
    assert str(exc.value) == (f"{out}: was written by another process during the run; left it alone, "
                              f"the new files are in {kept}")
    assert (kept / "plan.json").read_text() == "new\n"
    assert hidden(tmp_path) == []


def test_force_does_not_replace_a_directory_created_during_the_run(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="another process"):
        with atomic_dir(out, force=True) as tmp:
            (tmp / "plan.json").write_text("new\n")
            (out / "notes.txt").write_text("mine\n")
    assert (out / "notes.txt").read_text() == "mine\n"


def test_two_runs_into_one_directory_the_second_refuses(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="was replaced by another process"):
        with atomic_dir(out) as first:
            (first / "plan.json").write_text("first\n")
            with atomic_dir(out) as second:
                (second / "plan.json").write_text("second\n")
    assert (out / "plan.json").read_text() == "second\n"
    assert (tmp_path / f"out.new-{os.getpid()}" / "plan.json").read_text() == "first\n"
    assert hidden(tmp_path) == []


def test_an_error_removes_the_claimed_directory_and_the_temporary(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "plan.json").write_text("half\n")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_a_directory_that_existed_before(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.json").write_text("old\n")
    with atomic_dir(out, force=True) as tmp:
        (tmp / "plan.json").write_text("new\n")
    assert sorted(os.listdir(out)) == ["plan.json"] and hidden(tmp_path) == []


def test_solve_refuses_a_directory_written_during_the_solve(tmp_path, capsys, monkeypatch):
    out = tmp_path / "p"
    real = solve_cmd.solve_request

    def solve_request(req, progress=None):
        (out / "mine.txt").write_text("keep me\n")
        return real(req, progress=progress)

    monkeypatch.setattr(solve_cmd, "solve_request", solve_request)
    code, _, err = run(["solve", *SMALL, "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {out}: was written by another process")
    assert os.listdir(out) == ["mine.txt"]
    assert (tmp_path / f"p.new-{os.getpid()}" / "plan.json").is_file()


@pytest.mark.parametrize("where,message", [
    ("file/sub", "cannot create the output directory ({tmp}/file is not a directory)"),
    (".", "is the working directory or above it; choose a new directory"),
    ("..", "is the working directory or above it; choose a new directory"),
    ("x" * 300, "cannot create the output directory (File name too long)"),
])
def test_bad_output_paths_are_one_line(where, message, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("a file\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    path = where if where in (".", "..") else str(tmp_path / where)
    code, _, err = run(["solve", *SMALL, "--out", path, "--force"], capsys)
    assert (code, err) == (2, f"error: {path}: {message.format(tmp=tmp_path)}\n")
    assert sorted(os.listdir(tmp_path)) == ["cwd", "file"] and os.listdir(tmp_path / "cwd") == []
