"""Engine exports read back the way the engines read them (SGLang's init_by_mapping, TensorRT-LLM's YAML)."""

from __future__ import annotations

import json

import yaml

from moeplace.launch.engines import SGLANG_FILE, TRTLLM_FILE, VLLM_MAP_FILE, VLLM_RECORD_FILE, ep_layout
from moeplace.launch.layout import plan_layout
from moeplace.launch.render import render_launch
from tests.launch.plans import chain_plan, ep_plan, make_plan


def two_per_layer_plan():
    """2 GPUs, 4 experts per MoE layer: every GPU holds 2 experts of each of the 2 layers (s = 2)."""
    return make_plan(hosts=["a1"], gpus_per_node=2, experts_per_gpu=4, flow="ep",
                     rank_items={0: [(0, 3), (0, 1), (1, 0), (1, 2)], 1: [(0, 0), (0, 2), (1, 3), (1, 1)]})


def sglang_ranks(p2l: list[list[int]], ep_size: int) -> dict[tuple[int, int], list[int]]:
    """(layer index, EP rank) -> logical experts, as SGLang assigns physical slot p to GPU p // local slots."""
    local = len(p2l[0]) // ep_size
    return {(layer, p // local): sorted(row[q] for q in range(p - p % local, p - p % local + local))
            for layer, row in enumerate(p2l) for p in range(len(row))}


def test_sglang_map_puts_every_expert_on_its_planned_gpu():
    for plan in (ep_plan(), two_per_layer_plan()):
        files = render_launch(plan).files
        data = json.loads(files[SGLANG_FILE])
        assert list(data) == ["physical_to_logical_map"]  # init_by_mapping(**data) takes only this key
        p2l = data["physical_to_logical_map"]
        W, E = plan.num_gpus, plan.model.num_experts
        assert len(p2l) == plan.model.num_layers and len({len(r) for r in p2l}) == 1
        assert len(p2l[0]) % W == 0 and len(p2l[0]) >= E
        by_gpu = sglang_ranks(p2l, W)
        for row in plan_layout(plan).rows:
            for layer in plan.model.moe_layer_numbers:
                want = sorted(s.expert for s in row.slots if s.layer == layer)
                assert by_gpu[(layer - 1, row.rank)] == want
        for layer in plan.model.dense_layers:
            assert p2l[layer - 1] == [p % E for p in range(len(p2l[0]))]


def test_trtllm_yaml_assigns_slots_rank_major():
    plan = two_per_layer_plan()
    data = yaml.safe_load(render_launch(plan).files[TRTLLM_FILE])
    assert data == {"initial_global_assignments": {1: [1, 3, 0, 2], 2: [0, 2, 1, 3]}, "num_slots": 4,
                    "layer_updates_per_iter": 0}


def test_expert_per_gpu_plan_is_refused_with_the_reason():
    launch = render_launch(chain_plan())
    reason = ("MoE layer 2's 4 experts sit on 4 of 9 GPUs (0 to 1 per GPU), but vLLM, SGLang and TensorRT-LLM give "
              "every EP rank the same number of slots of every MoE layer; for them, plan an EP layout: moeplace solve "
              "--model MODEL_FILE --cluster CLUSTER_FILE --flow ep --balance-per-layer --nodes 1 --gpus-per-node 2 "
              "--experts-per-gpu 4 --out plan-ep/")
    assert launch.engines == {"sglang": reason, "trtllm": reason, "vllm": reason}
    assert SGLANG_FILE not in launch.files and TRTLLM_FILE not in launch.files
    assert ("Not written: " + reason) in launch.files["engines/README.md"]
    index = json.loads(launch.files["artifacts.json"])
    assert index["engines"]["trtllm"] == {"file": None, "not_written": reason}


def test_ranks_that_are_not_node_major_are_refused():
    plan = ep_plan()
    swapped = [p.model_copy(update={"rank": {0: 1, 1: 0}.get(p.rank, p.rank)}) for p in plan.placements]
    plan = plan.model_copy(update={"placements": swapped})
    reason = ep_layout(plan_layout(plan))
    assert reason == ("rank 0 is GPU 1 of node 0; engines number EP ranks node-major (rank = node x 2 + GPU), so "
                      "the plan's ranks would land on other GPUs")


def test_vllm_files_agree_with_sglang_trtllm_and_the_plan():
    for plan in (ep_plan(), two_per_layer_plan()):
        files = render_launch(plan).files
        p2l = json.loads(files[SGLANG_FILE])["physical_to_logical_map"]
        trt = yaml.safe_load(files[TRTLLM_FILE])
        vmap = json.loads(files[VLLM_MAP_FILE])
        lines = files[VLLM_RECORD_FILE].splitlines()
        assert len(lines) == 1
        rec = json.loads(lines[0])
        m = plan.model
        assert rec["record_type"] == "eplb_initial_mapping" and rec["version"] == 1
        assert rec["num_slots"] == trt["num_slots"] == len(vmap[0])
        assert rec["num_redundant_experts"] == rec["num_slots"] - m.num_experts
        assert len(vmap) == m.num_moe_layers == len(rec["initial_global_assignments"])
        for ml, layer in enumerate(m.moe_layer_numbers):
            assert vmap[ml] == rec["initial_global_assignments"][str(ml)] == trt["initial_global_assignments"][layer - 1]
            assert vmap[ml] == p2l[layer - 1]
            assert sorted(set(vmap[ml])) == list(range(m.num_experts))
