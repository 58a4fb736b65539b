"""`moeplace predict`: the prediction for a plan.json, printed and as JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from moeplace.cli import cli, main
from moeplace.commands.predict import CROSS_NODE_NOTE
from moeplace.costmodel.deployment import Options, Workload
from moeplace.costmodel.model import predict, prepare
from moeplace.costmodel.planload import deployment_from_plan
from moeplace.costmodel.presets import load_profile


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "p"
    r = CliRunner().invoke(cli, ["solve", "--model", "examples/tiny.toml", "--nodes", "4", "--work-limit", "200",
                                 "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    return out


def test_predict_prints_both_phases_and_names_the_profile(plan_dir):
    r = CliRunner().invoke(cli, ["predict", str(plan_dir), "--profile", "h100-sxm", "--batch", "8"])
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith(f"{plan_dir / 'plan.json'}: chain flow on 32 GPUs; profile h100-sxm (preset: ")
    for label in ("tokens/s per GPU", "latency ms", "MFU", "memory per GPU GB", "fits", "cross-node B/token",
                  "peak NIC / link / NVLink", "bottleneck"):
        assert label in r.output
    assert "decode, batch 8, context 2,048" in r.output and "prefill, batch 8, prompt 2,048" in r.output
    assert r.output.splitlines()[-1] == CROSS_NODE_NOTE and len(CROSS_NODE_NOTE) <= 160  # one line in a log
    assert "flow objective: the flow's transfers alone, what solve minimises" in CROSS_NODE_NOTE


def test_predict_json_is_the_library_prediction(plan_dir):
    r = CliRunner().invoke(cli, ["predict", str(plan_dir / "plan.json"), "--phase", "decode", "--batch", "16",
                                 "--seq-len", "512", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["profile"] == "seed" and data["flow"] == "chain" and data["gpus"] == 32
    (row,) = data["predictions"]
    dep, _, _ = deployment_from_plan(plan_dir)
    p = predict(prepare(load_profile("seed"), dep, Options(), "decode"), Workload("decode", 16, 512))
    assert row["tokens_per_s"] == pytest.approx(p.tokens_per_s)
    assert row["latency_ms"] == pytest.approx(p.latency_us / 1e3)
    assert row["cross_node_bytes_per_token"] == pytest.approx(p.cross_node_bytes_per_token)


def test_predict_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path / "missing.json")])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.json'}: file not found\n"


def test_predict_rejects_an_unknown_profile(plan_dir, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(plan_dir), "--profile", "tpu-v9"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --profile: unknown hardware profile 'tpu-v9' (known: seed, h100-sxm, h200")
