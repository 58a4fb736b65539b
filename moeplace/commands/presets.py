"""`moeplace presets`: the named models, clusters and GPUs."""

from __future__ import annotations

import click

from moeplace.console import Console
from moeplace.placement.presets import CLUSTER_PRESETS, GPU_PRESETS, MODEL_PRESETS, list_presets


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the presets' full specs as JSON")
def presets(as_json: bool) -> None:
    """List the model, cluster and GPU presets.

    \b
    Examples:
      moeplace presets
      moeplace presets --json
    """
    console = Console()
    if as_json:
        console.json({
            "model": {k: v.model_dump(mode="json") for k, v in MODEL_PRESETS.items()},
            "cluster": {k: v.model_dump(mode="json") for k, v in CLUSTER_PRESETS.items()},
            "gpu": {k: v.model_dump(mode="json") for k, v in GPU_PRESETS.items()},
        })
        return
    notes = list_presets()
    console.table("models", ["preset", "layers (MoE)", "experts", "top-k", "hidden", "expert hidden", "note"],
                  [(k, f"{m.num_layers} ({m.num_moe_layers})", m.num_experts, m.top_k, m.hidden, m.expert_hidden,
                    notes["model"][k]) for k, m in MODEL_PRESETS.items()], right=(1, 2, 3, 4, 5))
    console.line()
    console.table("clusters", ["preset", "nodes x GPUs", "GPU", "NICs", "note"],
                  [(k, f"{c.num_nodes} x {c.gpus_per_node}", c.gpu.name, f"{c.nics_per_node} x {c.nic_gbps:g} Gb/s",
                    notes["cluster"][k]) for k, c in CLUSTER_PRESETS.items()])
    console.line()
    console.table("GPUs", ["preset", "memory GB", "BF16 TFLOP/s", "HBM TB/s", "NVLink GB/s", "note"],
                  [(k, f"{g.memory_gb:g}", f"{g.bf16_tflops:g}", f"{g.hbm_tbps:g}", f"{g.nvlink_gbps:g}",
                    notes["gpu"][k]) for k, g in GPU_PRESETS.items()], right=(1, 2, 3, 4))
