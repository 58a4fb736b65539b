"""`moeplace compare` end to end on a small world: files, contents, sweeps, determinism, errors."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from moeplace.cli import cli, main
from moeplace.costmodel.presets import PROFILE_PRESETS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    prof = PROFILE_PRESETS["h100-sxm"].model_dump(mode="json")
    prof.update(name="lab", source="calibrated", device="NVIDIA H100 80GB HBM3", measured_at="2026-11-26T00:00:00Z")
    (d / "hw.json").write_text(json.dumps(prof))
    (d / "small.json").write_text(json.dumps({"preset": "seed", "name": "small", "num_nodes": 4}))
    return d


def args(world, out, *extra):
    return ["compare", "--model", "examples/tiny.toml", "--profile", str(world / "hw.json"), "--cluster",
            str(world / "small.json"), "--experts-per-gpu", "1,2,4", "--work-limit", "100", "--context", "256",
            "--prefill-batch", "4", "--out", str(out), "-q", *extra]


@pytest.fixture(scope="module")
def report(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "r"
    r = CliRunner().invoke(cli, args(world, out, "--sweep", "batch=1,4", "--sweep", "experts-per-gpu=1,2"))
    assert r.exit_code == 0, r.output
    return out


def test_writes_the_three_files(report):
    assert sorted(p.name for p in report.iterdir()) == ["comparison.json", "report.html", "report.md"]


def test_report_md_names_inputs_and_ends_with_the_claims(report):
    md = (report / "report.md").read_text()
    h2 = [line for line in md.splitlines() if line.startswith("## ")]
    assert h2[:2] == ["## Summary", "## Verdict in words"] and h2[-1] == "## The seed's claims"
    assert "## Hardware `lab`" in h2 and "## Inputs" in h2
    assert "## Sweep: batch = 1, 4" in h2 and "## Sweep: experts-per-gpu = 1, 2" in h2
    assert "calibrated profile" in md and "NVIDIA H100 80GB HBM3" in md
    for claim in ("all experts of a layer compute at once", "near-linear scaling",
                  "communication hidden by compute", "60% MFU"):
        assert f"| {claim} | `lab` | " in md
        assert re.search(rf"^\| {claim} \| (holds|fails|n/a) \| (holds|fails|n/a) \|$", md, re.M), claim
    assert "| claim of the seed design | lab: decode | lab: prefill |" in md
    for word in ("BRIEF", "ANCHORS"):
        assert word not in md and word not in (report / "report.html").read_text()
    assert "expert per GPU (seed, chain)" in md and "EP4, 2 experts/GPU (TP attention)" in md


def test_tables_have_the_columns_they_need(report):
    md = (report / "report.md").read_text()
    prefill = md.split("prefill, 4 prompts, by prompt length")[1].split("\n\n")[1].splitlines()
    assert prefill[0].startswith("| prompt tokens | design | scale |")
    assert {line.split(" | ")[0].strip("| ") for line in prefill[2:]} >= {"512", "1,024", "2,048", "4,096"}
    sweep = md.split("## Sweep: batch = 1, 4")[1].split("\n\n")[2].splitlines()
    assert sweep[0].startswith("| hardware | batch | design |")
    assert all(line.startswith("| `lab` | ") for line in sweep[2:])


def test_comparison_json_has_every_row(report):
    data = json.loads((report / "comparison.json").read_text())
    assert data["format"] == "moeplace.comparison"
    designs = {d["key"] for d in data["designs"]}
    assert designs == {"seed", "ep2-dp", "ep2-tp", "ep4-dp", "ep4-tp"}
    cap = [r for r in data["rows"] if r["point"] == "decode-capacity"]
    assert {(r["design"], r["scale"]) for r in cap} == {(d, s) for d in designs for s in ("equal-gpus", "one-instance")}
    eq = {r["design"]: r for r in cap if r["scale"] == "equal-gpus"}
    assert {r["gpus"] for r in eq.values()} == {32}
    assert eq["ep2-tp"]["gpus_per_instance"] == 4 and eq["ep2-tp"]["instances"] == 8
    assert len(data["claims"]) == 4
    assert [s["key"] for s in data["sweeps"]] == ["batch", "experts-per-gpu"]


def test_same_inputs_same_bytes(world, report, tmp_path):
    again = tmp_path / "again"
    r = CliRunner().invoke(cli, args(world, again, "--sweep", "batch=1,4", "--sweep", "experts-per-gpu=1,2"))
    assert r.exit_code == 0, r.output
    for name in ("report.md", "report.html", "comparison.json"):
        assert (again / name).read_bytes() == (report / name).read_bytes(), name


def test_refuses_to_overwrite_and_rejects_bad_sweeps(world, report, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(args(world, report))
    assert e.value.code == 2
    assert capsys.readouterr().err == f"error: {report}: output directory exists and is not empty (use --force to " \
                                      "replace it)\n"
    with pytest.raises(SystemExit) as e:
        main(args(world, tmp_path / "x", "--sweep", "gpus=1,2"))
    assert capsys.readouterr().err == ("error: --sweep: expected KEY=V1,V2,... with KEY one of batch, experts-per-gpu, "
                                       "context, prompt, got 'gpus=1,2'\n")
    with pytest.raises(SystemExit):
        main(args(world, tmp_path / "y", "--experts-per-gpu", "1,3"))
    assert capsys.readouterr().err == "error: experts-per-gpu: 3 does not divide the 8 experts of a layer\n"


def test_the_expert_per_gpu_design_is_the_plan_solve_writes(world, tmp_path):
    """compare plans through solve's planning step: with no --work-limit it judges the very plan that
    `moeplace solve` writes for the same model, cluster, statistics and seed (not a weaker, cheaper one)."""
    out = tmp_path / "cmp"
    r = CliRunner().invoke(cli, ["compare", "--model", "examples/tiny.toml", "--profile", str(world / "hw.json"),
                                 "--cluster", str(world / "small.json"), "--experts-per-gpu", "1", "--context",
                                 "256", "--prefill-batch", "4", "--seed", "5", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    seed_design = json.loads((out / "comparison.json").read_text())["placements"]["1"]
    r = CliRunner().invoke(cli, ["solve", "--model", "examples/tiny.toml", "--cluster", str(world / "small.json"),
                                 "--seed", "5", "--no-emit", "-q", "--out", str(tmp_path / "plan")])
    assert r.exit_code == 0, r.output
    solved = json.loads((tmp_path / "plan" / "plan.json").read_text())["solver"]
    assert seed_design["solver"] == solved["name"] == "lns"
    assert seed_design["objective"] == pytest.approx(solved["objective"], rel=1e-12)
    assert seed_design["work"] == solved["work"] and seed_design["stop_reason"] == solved["stop_reason"]
