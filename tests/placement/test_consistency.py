"""A crafted plan.json (issue 14): evaluate, predict and topology loads refuse what emit refuses, in one line."""

from __future__ import annotations

import json

import pytest

from moeplace.launch.layout import plan_problems
from tests.conftest import REPO
from tests.launch.plans import chain_plan
from tests.traces.helpers import run

TINY = str(REPO / "examples" / "tiny.toml")


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    from moeplace.cli import main

    out = tmp_path_factory.mktemp("plan") / "p"
    with pytest.raises(SystemExit) as exc:
        main(["solve", "--model", TINY, "--nodes", "4", "--gpus-per-node", "8", "--work-limit", "200", "--no-emit",
              "--out", str(out), "-q"])
    assert exc.value.code == 0
    return json.loads((out / "plan.json").read_text())


def _edit(data: dict, what: str) -> None:
    p = data["placements"]
    if what == "duplicate rank":
        p[1]["rank"] = 0
    elif what.startswith("num_gpus"):
        data["num_gpus"] = int(float(what.split()[1]))
    elif what == "replica gap":
        p[1]["replica"] = 5
    elif what == "host newline":
        p[0]["host"] += "\n"


@pytest.mark.parametrize("what, words", [
    ("duplicate rank", "GPUs have no placement row"),
    ("num_gpus 0", "num_gpus is 0, but the cluster has 4 nodes x 8 GPUs = 32"),
    ("num_gpus -32", "num_gpus is -32"),
    ("num_gpus 1e12", "num_gpus is 1000000000000"),
    ("replica gap", "but no replica 0 (replicas are numbered 0..r-1)"),
    ("host newline", "is not a valid host name"),
])
@pytest.mark.parametrize("command", [["evaluate"], ["predict"], ["topology", "loads"], ["emit"],
                                     ["solve", "--model", TINY, "--nodes", "4", "--gpus-per-node", "8", "--from"]])
def test_every_command_refuses_an_inconsistent_plan(tmp_path, capsys, solved, what, words, command):
    data = json.loads(json.dumps(solved))
    _edit(data, what)
    (tmp_path / "plan.json").write_text(json.dumps(data))
    extra = ["--out", str(tmp_path / "launch")] if command[0] in ("emit", "solve") else []
    code, _, err = run([*command, str(tmp_path), *extra], capsys)
    assert code == 2 and err.count("\n") == 1 and "placements: " in err and words in err, err


def test_replicas_must_be_numbered_from_zero():
    plan = chain_plan()
    placements = list(plan.placements)
    i = next(i for i, p in enumerate(placements) if p.expert is not None)
    placements[i] = placements[i].model_copy(update={"replica": 2})
    problems = plan_problems(plan.model_copy(update={"placements": placements}))
    assert any("has replicas 2 but no replica 0" in p for p in problems), problems


def test_a_plan_names_no_file_outside_its_folder(tmp_path, capsys, solved):
    """Issue 14: a plan's topology.params.path of /etc/shadow was opened, hashed, and its existence told."""
    data = json.loads(json.dumps(solved))
    data["topology"]["params"] = {**data["topology"]["params"], "source": "hostlist", "file": "shadow",
                                  "path": "/etc/shadow", "sha256": "0" * 64}
    (tmp_path / "plan.json").write_text(json.dumps(data))
    code, _, err = run(["evaluate", str(tmp_path)], capsys)
    assert code == 2 and "opened only beside the plan or in the current directory" in err, err
    assert "different version" not in err
