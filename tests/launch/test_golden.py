"""Golden files pin every artifact's bytes; regenerate with MOEPLACE_UPDATE_GOLDEN=1 after a deliberate change.

The plan's sha256 appears in most files; the goldens hold `<plan-sha256>` / `<plan-sha12>` in its place, so
that a new field in plan.json (another module's format) does not rewrite every golden file. plan.json itself
is the input, not a launch format: it is checked to be the canonical serialization instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moeplace.launch.options import EmitOptions
from moeplace.launch.render import render_launch
from moeplace.placement.plan import plan_json
from tests.launch.plans import chain_plan, ep_plan

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = "MOEPLACE_UPDATE_GOLDEN=1 python -m pytest tests/launch/test_golden.py"
CASES = {
    "chain": (chain_plan, EmitOptions()),
    "ep": (ep_plan, EmitOptions(master_port=31000, rdzv_port=31001, tokens_per_step=512, capacity_factor=1.5,
                                job_name="ep-test", partition="gpu", account="moe", time="00:10:00",
                                slurm_gpus=False, cpus_per_rank=4)),
}


def normalized(case: str) -> dict[str, str]:
    make, options = CASES[case]
    plan = make()
    launch = render_launch(plan, options)
    assert launch.files["plan.json"] == plan_json(plan)
    sha = launch.plan_sha256
    return {rel: text.replace(sha, "<plan-sha256>").replace(sha[:12], "<plan-sha12>")
            for rel, text in launch.files.items() if rel != "plan.json"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_artifacts_match_golden_files(case):
    files = normalized(case)
    root = GOLDEN / case
    if os.environ.get("MOEPLACE_UPDATE_GOLDEN") == "1":
        for old in root.rglob("*"):
            if old.is_file():
                old.unlink()
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
    on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert on_disk == sorted(files), f"the set of artifacts changed; after a deliberate change: {REGENERATE}"
    for rel, text in files.items():
        assert text == (root / rel).read_text(encoding="utf-8"), \
            f"{case}/{rel} differs from its golden file; after a deliberate change: {REGENERATE}"


def test_rendering_is_deterministic():
    assert render_launch(chain_plan()).files == render_launch(chain_plan()).files
