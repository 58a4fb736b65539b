"""The Python front door: `moeplace.solve`, `Plan.save`, `load_plan`, `evaluate`, and docs/api.md's example."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import moeplace
from moeplace.cli import main
from moeplace.errors import InputError
from moeplace.placement.presets import load_cluster, load_model
from moeplace.topologies.specs import DragonflyPlusSpec
from tests.conftest import REPO

TINY = str(REPO / "examples" / "tiny.toml")
KW = dict(model=TINY, nodes=2, gpus_per_node=4, experts_per_gpu=4, work_limit=3000)
ARGV = ["--model", TINY, "--nodes", "2", "--gpus-per-node", "4", "--experts-per-gpu", "4", "--work-limit", "3000"]


def cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    return out.out


def test_save_writes_what_solve_out_writes(tmp_path, capsys):
    plan = moeplace.solve(**KW, seed=3)
    assert plan.save(tmp_path / "api") == tmp_path / "api" / "plan.json"
    cli(["solve", *ARGV, "--seed", "3", "--out", str(tmp_path / "cli")], capsys)
    api_files = sorted(p.relative_to(tmp_path / "api") for p in (tmp_path / "api").rglob("*"))
    cli_files = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*"))
    assert api_files == cli_files
    for rel in cli_files:
        if rel.name != "run.json" and (tmp_path / "cli" / rel).is_file():
            assert (tmp_path / "api" / rel).read_bytes() == (tmp_path / "cli" / rel).read_bytes(), rel
    recorded = json.loads((tmp_path / "api" / "plan.json").read_text())["solver"]
    assert (plan.objective, plan.bound, plan.gap) == (recorded["objective"], recorded["bound"], recorded["gap"])
    assert all(isinstance(x, float) for x in (plan.objective, plan.bound, plan.gap))
    assert 0.0 <= plan.bound <= plan.objective


def test_save_without_launch_and_refusing_a_full_directory(tmp_path):
    plan = moeplace.solve(**KW)
    plan.save(tmp_path / "p", launch=False)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["plan.json", "run.json"]
    with pytest.raises(InputError, match="not empty"):
        plan.save(tmp_path / "p")
    plan.save(tmp_path / "p", force=True)
    assert (tmp_path / "p" / "manifest.json").is_file()


def test_evaluate_returns_what_evaluate_json_prints(tmp_path, capsys):
    plan = moeplace.solve(**KW)
    plan.save(tmp_path / "p")
    printed = json.loads(cli(["evaluate", str(tmp_path / "p"), "--json"], capsys))
    assert moeplace.evaluate(moeplace.load_plan(tmp_path / "p")) == printed
    assert moeplace.evaluate(str(tmp_path / "p" / "plan.json")) == printed
    assert printed["metrics"]["objective"] == pytest.approx(plan.objective, rel=1e-6)
    unsaved = moeplace.evaluate(moeplace.solve(**KW))
    assert unsaved["plan"] is None and unsaved["metrics"] == printed["metrics"]


def test_spec_objects_and_presets_by_name():
    model, cluster = load_model(TINY), load_cluster("seed", num_nodes=2, gpus_per_node=4, experts_per_gpu=4)
    plan = moeplace.solve(model=model, cluster=cluster, topology=DragonflyPlusSpec(radix=16, routing="valiant"), work_limit=1000)
    assert plan.topology.kind == "dragonfly+" and plan.cluster.topology.radix == 16
    assert plan.model == model and plan.cluster.num_nodes == 2
    by_name = moeplace.solve(model="mixtral-8x7b", nodes=4, gpus_per_node=8, experts_per_gpu=8, work_limit=500)
    assert by_name.model.name == "mixtral-8x7b" and by_name.num_gpus == 32


def test_bad_input_raises_the_cli_message():
    with pytest.raises(InputError, match="unknown model preset 'nope'"):
        moeplace.solve(model="nope")
    cluster = load_cluster("seed")
    with pytest.raises(InputError, match=r"^cluster: num_nodes: Input should be greater than 0 \(got 0\)$"):
        moeplace.solve(cluster=cluster, nodes=0)


def test_import_moeplace_is_cheap():
    code = "import sys, moeplace; print(sorted(m for m in ('numpy', 'pydantic', 'moeplace.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert callable(moeplace.solve) and "solve" in dir(moeplace)
    with pytest.raises(AttributeError):
        moeplace.no_such_thing  # noqa: B018


def test_the_docs_example_runs_as_written(tmp_path, monkeypatch):
    text = (REPO / "docs" / "api.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "tiny.toml").write_text((REPO / "examples" / "tiny.toml").read_text())
    exec(compile(block, "docs/api.md", "exec"), {})
    assert (tmp_path / "tiny-plan" / "plan.json").is_file()


def test_solve_has_the_cli_defaults():
    import inspect

    import click

    from moeplace.commands.solve import solve as command

    api_defaults = {k: v.default for k, v in inspect.signature(moeplace.solve).parameters.items()}
    ctx = click.Context(command)
    cli_defaults = {p.name: p.get_default(ctx) for p in command.params}
    renamed = {"model": "model_ref", "cluster": "cluster_ref", "stats": "stats_ref"}
    repeatable = {"tier_costs", "synth"}       # KEY=VALUE strings on the command line, a dict (or None) here
    shared = [k for k in api_defaults if renamed.get(k, k) in cli_defaults and k not in repeatable]
    assert len(shared) == 23
    assert {k: api_defaults[k] for k in shared} == {k: cli_defaults[renamed.get(k, k)] for k in shared}
