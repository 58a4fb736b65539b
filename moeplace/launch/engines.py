"""Engine placement exports: SGLang `--init-expert-location`, TensorRT-LLM `initial_global_assignments`, vLLM.

Both engines run classic expert parallelism: every EP rank holds the same number `s` of physical expert
slots of *every* MoE layer, physical slot p lives on EP rank p // s, and EP rank r is the r-th GPU in
node-major order. A plan fits when its ranks are node-major and every rank holds exactly `s` experts of each
MoE layer (an `--flow ep --balance-per-layer` plan with experts_per_gpu = s x MoE layers); then

    phy2log_LP[l, r * s + j] = the j-th expert (by expert id, then replica) of layer l on rank r

An expert-per-GPU plan, where each layer's experts sit on their own GPUs, is not a layout either engine can
run (a layer's other GPUs would hold none of it); the export is then refused with the reason. Formats, as
read by the engines' source:
  SGLang (python/sglang/srt/eplb/expert_location.py): a JSON object whose only key `physical_to_logical_map`
    is passed to `init_by_mapping`, shape [num_hidden_layers, num_physical_experts], a row for every layer
    (dense layers' rows are never read; they hold the trivial map p mod num_experts);
    num_physical_experts = num_experts + `--ep-num-redundant-experts`, divisible by the EP size.
  TensorRT-LLM (examples/ep_load_balancer): YAML with `initial_global_assignments` {0-based layer index of
    each MoE layer: [num_slots expert ids, rank-major]}, `num_slots` and `layer_updates_per_iter` (0: static).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moeplace.launch.layout import Layout
from moeplace.launch.safe import comment_text
from moeplace.topologies.base import count

SGLANG_FILE = "engines/sglang-init-expert-location.json"
TRTLLM_FILE = "engines/trtllm-moe-load-balancer.yaml"
VLLM_RECORD_FILE = "engines/vllm-eplb-initial-mapping.jsonl"
VLLM_MAP_FILE = "engines/vllm-initial-expert-map.json"
ENGINE_FILES = {"sglang": (SGLANG_FILE,), "trtllm": (TRTLLM_FILE,), "vllm": (VLLM_RECORD_FILE, VLLM_MAP_FILE)}


@dataclass(frozen=True, eq=False)
class EpLayout:
    """phy2log_LP: int [MoE layers, ranks x slots_per_rank]; the expert id in each physical slot."""

    slots_per_rank: int
    phy2log_LP: np.ndarray

    @property
    def num_slots(self) -> int:
        return int(self.phy2log_LP.shape[1])


def ep_layout(layout: Layout) -> EpLayout | str:
    """The engine layout of a plan, or the reason (one sentence with the numbers) why it has none."""
    m, W = layout.plan.model, layout.world_size
    if not layout.is_node_major:
        bad = next(r for r in layout.rows if r.rank != r.node * layout.gpus_per_node + r.local_gpu)
        return (f"rank {bad.rank} is GPU {bad.local_gpu} of node {bad.node}; engines number EP ranks node-major "
                f"(rank = node x {layout.gpus_per_node} + GPU), so the plan's ranks would land on other GPUs")
    L = m.num_moe_layers
    count_RL = np.zeros((W, L), dtype=np.int64)
    for row in layout.rows:
        for s in row.slots:
            count_RL[row.rank, s.moe_layer] += 1
    s = int(count_RL[0, 0])
    if s > 0 and np.all(count_RL == s):
        phy2log = np.zeros((L, W * s), dtype=np.int64)
        for row in layout.rows:
            for ml in range(L):
                mine = [x.expert for x in row.slots if x.moe_layer == ml]
                phy2log[ml, row.rank * s:(row.rank + 1) * s] = mine
        return EpLayout(slots_per_rank=s, phy2log_LP=phy2log)
    ml = _worst_layer(count_RL)
    holders = int((count_RL[:, ml] > 0).sum())
    layer = m.moe_layer_numbers[ml]
    return (f"MoE layer {layer}'s {m.num_experts} experts sit on {holders} of {W} GPUs "
            f"({int(count_RL[:, ml].min())} to {int(count_RL[:, ml].max())} per GPU), but vLLM, SGLang and "
            f"TensorRT-LLM give every EP rank the same number of slots of every MoE layer; for them, plan an EP "
            f"layout: {ep_command(layout)}")


def ep_command(layout: Layout) -> str:
    """A `moeplace solve` line that plans an EP layout of this plan's model the engines run: W GPUs, W a
    divisor of the experts per layer filling whole nodes (the largest that fits), K = MoE layers x E / W."""
    from moeplace.placement.presets import CLUSTER_PRESETS, MODEL_PRESETS
    from moeplace.topologies.hostlist import compress_hostlist

    plan, G = layout.plan, layout.gpus_per_node
    E, L = plan.model.num_experts, plan.model.num_moe_layers
    whole = [w for w in range(G, E + 1, G) if E % w == 0 and w // G <= layout.num_nodes]
    W = max(whole) if whole else max(w for w in range(1, min(E, G) + 1) if E % w == 0)
    nodes, gpn = (W // G, G) if whole else (1, W)
    args = ["moeplace solve"]
    if plan.model.name != "seed":
        args.append(f"--model {plan.model.name if MODEL_PRESETS.get(plan.model.name) == plan.model else 'MODEL_FILE'}")
    if plan.cluster.name != "seed":
        args.append(f"--cluster {plan.cluster.name if plan.cluster.name in CLUSTER_PRESETS else 'CLUSTER_FILE'}")
    args += ["--flow ep --balance-per-layer", f"--nodes {nodes} --gpus-per-node {gpn} --experts-per-gpu {L * E // W}"]
    if not layout.placeholder_hosts:
        args.append(f"--hosts '{compress_hostlist(list(layout.hosts[:nodes]))}'")
    return " ".join(args + ["--out plan-ep/"])


def _worst_layer(count_RL: np.ndarray) -> int:
    """The first MoE layer whose per-rank counts are uneven or differ from layer 0's."""
    target = count_RL[0, 0]
    uneven = (count_RL != target).any(axis=0)
    return int(np.flatnonzero(uneven)[0]) if uneven.any() else 0


def sglang_json(layout: Layout, ep: EpLayout) -> str:
    """`{"physical_to_logical_map": [[...] x num_hidden_layers]}`, one row per line."""
    m = layout.plan.model
    P = ep.num_slots
    trivial = [p % m.num_experts for p in range(P)]
    by_layer = {num: ep.phy2log_LP[ml].tolist() for ml, num in enumerate(m.moe_layer_numbers)}
    rows = [by_layer.get(num, trivial) for num in range(1, m.num_layers + 1)]
    body = ",\n".join("    [" + ", ".join(str(x) for x in row) + "]" for row in rows)
    return '{\n  "physical_to_logical_map": [\n' + body + "\n  ]\n}\n"


def trtllm_yaml(layout: Layout, ep: EpLayout) -> str:
    """The load-balancer YAML, keys as `yaml.dump` sorts them, lists in flow style."""
    m = layout.plan.model
    lines = ["initial_global_assignments:"]
    for ml, num in enumerate(m.moe_layer_numbers):
        lines.append(f"  {num - 1}: [" + ", ".join(str(x) for x in ep.phy2log_LP[ml].tolist()) + "]")
    lines += ["layer_updates_per_iter: 0", f"num_slots: {ep.num_slots}"]
    return "\n".join(lines) + "\n"


def vllm_record_jsonl(layout: Layout, ep: EpLayout) -> str:
    """One `eplb_initial_mapping` JSON line; layers keyed by their 0-based index among the MoE layers."""
    import json

    R = ep.num_slots - layout.plan.model.num_experts
    record = {"record_type": "eplb_initial_mapping", "version": 1, "num_redundant_experts": R,
              "num_slots": ep.num_slots,
              "initial_global_assignments": {str(ml): row.tolist() for ml, row in enumerate(ep.phy2log_LP)}}
    return json.dumps(record, separators=(",", ":")) + "\n"


def vllm_map_json(layout: Layout, ep: EpLayout) -> str:
    """`[[expert id per physical slot] per MoE layer]`, one layer per line."""
    body = ",\n".join("  [" + ", ".join(str(x) for x in row.tolist()) + "]" for row in ep.phy2log_LP)
    return "[\n" + body + "\n]\n"


def engine_files(layout: Layout, ep: EpLayout) -> dict[str, str]:
    """{relative path: text} of every engine export of an EP layout."""
    return {SGLANG_FILE: sglang_json(layout, ep), TRTLLM_FILE: trtllm_yaml(layout, ep),
            VLLM_RECORD_FILE: vllm_record_jsonl(layout, ep), VLLM_MAP_FILE: vllm_map_json(layout, ep)}


def engines_readme(layout: Layout, ep: EpLayout | str, plan_sha256: str, master_port: int) -> str:
    """How to hand the exports to each engine, or why they were not written."""
    m, W, N = layout.plan.model, layout.world_size, layout.num_nodes
    lines = [f"# Engine placement exports: moeplace plan {plan_sha256[:12]} ({comment_text(m.name)} on {N} nodes x "
             f"{layout.gpus_per_node} GPUs)", ""]
    if isinstance(ep, str):
        lines += ["Not written: " + ep, "",
                  "The bundled runtime runs this plan as it is: see ../job.sbatch and ../torchrun.sh.", ""]
        return "\n".join(lines)
    R = ep.num_slots - m.num_experts
    lines += [
        f"Layout: {count(ep.slots_per_rank, 'slot')} of every MoE layer per GPU, {ep.num_slots} physical slots per layer "
        f"({R} redundant), EP rank r = GPU r of the plan, node-major: start the engine's node i on host i "
        f"(line i of ../hostfile.deepspeed).", "",
        "## SGLang", "",
        f"{SGLANG_FILE.split('/')[1]}: physical_to_logical_map, {m.num_layers} layers x {ep.num_slots} slots.", "",
        "    python -m sglang.launch_server --model-path MODEL \\",
        f"        --tp-size {W} --ep-size {W} --nnodes {N} --node-rank I --dist-init-addr "
        f"{layout.master_addr}:{master_port} \\",
        f"        --ep-num-redundant-experts {R} --init-expert-location {SGLANG_FILE}", "",
        "plus the expert-parallel flags you already use (all-to-all backend, DP attention).", "",
        "## TensorRT-LLM", "",
        f"{TRTLLM_FILE.split('/')[1]}: static assignment (layer_updates_per_iter 0), num_slots {ep.num_slots}. "
        "In extra_llm_api_options.yaml:", "",
        "    moe_config:",
        "      backend: WIDEEP",
        f"      load_balancer: {TRTLLM_FILE}", "",
        f"and run with --tp {W} --ep {W}, ranks started in the plan's order (srun with SLURM_HOSTFILE=../hostfile "
        "and --distribution=arbitrary, or mpirun with ../rankfile.openmpi).", "",
        "## vLLM (proposed formats, open PRs)", "",
        f"{VLLM_MAP_FILE.split('/')[1]}: one list of {ep.num_slots} logical expert ids per MoE layer "
        "(vllm-project/vllm#49572):", "",
        f"    vllm serve MODEL --enable-expert-parallel --enable-eplb --data-parallel-size {W} \\",
        f"        --eplb-config '{{\"num_redundant_experts\": {R}, \"initial_expert_map_path\": \"{VLLM_MAP_FILE}\"}}'",
        "",
        f"{VLLM_RECORD_FILE.split('/')[1]}: the same layout as an `eplb_initial_mapping` record "
        "(vllm-project/vllm#41141, offline EPLB).", "",
    ]
    return "\n".join(lines)
