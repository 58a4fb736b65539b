"""`moeplace predict`: what a plan does on hardware, by the cost model."""

from __future__ import annotations

import click

from moeplace.commands.options import parse_pairs
from moeplace.console import Console
from moeplace.costmodel.deployment import Options, Workload
from moeplace.costmodel.model import predict as run_predict
from moeplace.costmodel.model import prepare
from moeplace.costmodel.planload import deployment_from_plan
from moeplace.costmodel.presets import default_profile_for, load_profile

CROSS_NODE_NOTE = ("cross-node B/token: all the cost model sends per token (attention and dense-layer hops too); "
                   "flow objective: the flow's transfers alone, what solve minimises")
OPTION_KNOBS = {"dense_ffn_hidden": int, "vocab_size": int, "reserve_gb": float, "micro_batches": int,
                "dense_layers": str}


@click.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=True))
@click.option("--profile", "profile_ref", metavar="PRESET|FILE", default=None,
              help="hardware profile preset or a calibrated .json [default: the preset named like the plan's "
                   "cluster, else seed]")
@click.option("--phase", type=click.Choice(["decode", "prefill", "both"]), default="both", show_default=True)
@click.option("--batch", default=64, show_default=True, type=click.IntRange(min=1),
              help="sequences in flight on all instances together")
@click.option("--seq-len", default=2048, show_default=True, type=click.IntRange(min=1),
              help="decode context / prefill prompt length, tokens")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1),
              help="data-parallel replicas of the plan")
@click.option("--ep-attention", type=click.Choice(["dp", "tp"]), default="dp", show_default=True,
              help="ep plans: data-parallel attention (the ep flow) or tensor-parallel inside the node")
@click.option("--stats", "stats_path", metavar="FILE", default=None,
              help="routing statistics (default: the plan's synthetic statistics)")
@click.option("--option", "knobs", multiple=True, metavar="KNOB=VALUE",
              help="cost-model knob: dense_ffn_hidden, vocab_size, reserve_gb, micro_batches, dense_layers")
@click.option("--no-overlap", is_flag=True, help="transfers never overlap compute")
@click.option("--no-attention-hop", is_flag=True, help="chain: charge the chain flow's transfers only")
@click.option("--json", "as_json", is_flag=True, help="print the prediction as JSON")
def predict(plan_path, profile_ref, phase, batch, seq_len, instances, ep_attention, stats_path, knobs, no_overlap,
            no_attention_hop, as_json) -> None:
    """Predict time per layer, tokens/s, latency, MFU, memory and traffic of PLAN on a hardware profile.

    \b
    Examples:
      moeplace predict plan/plan.json
      moeplace predict plan/ --profile h100-sxm --phase decode --batch 4096 --seq-len 4096
      moeplace predict plan/ --profile calib/hwprofile.json --json
    """
    from moeplace.report.compare import row_of
    from moeplace.report.scenarios import Design, World

    dep, plan, scored_on = deployment_from_plan(plan_path, stats_path=stats_path, instances=instances,
                                                ep_attention=ep_attention)
    profile = load_profile(profile_ref or default_profile_for(plan.cluster.name))
    options = Options(overlap=not no_overlap, attention_hop=not no_attention_hop,
                      **parse_pairs(knobs, "--option", OPTION_KNOBS))
    world = World(key=profile.name, cluster=plan.cluster, profile=profile, source=profile.source)
    design = Design(1 if dep.flow_model.pipelined else dep.experts_per_gpu_per_layer, ep_attention)
    phases = ("decode", "prefill") if phase == "both" else (phase,)
    rows = []
    for ph in phases:
        pred = run_predict(prepare(profile, dep, options, ph), Workload(ph, batch, seq_len))
        row = row_of(pred, world, design, "one-instance" if instances == 1 else "replicas", ph)
        row["label"] = dep.name
        rows.append(row)
    head = {"plan": dep.source, "flow": dep.flow, "gpus": dep.num_gpus, "profile": profile.name,
            "profile_source": profile.source, "device": profile.device, "statistics": scored_on,
            "options": options.as_dict()}
    if as_json:
        Console().json({**head, "predictions": rows})
        return
    show(Console(), head, rows)


def show(console: Console, head: dict, rows: list[dict]) -> None:
    from moeplace.report.document import f_int, f_ms, f_pct, f_sig

    console.line(f"{head['plan']}: {head['flow']} flow on {head['gpus']:,} GPUs; profile {head['profile']} "
                 f"({head['profile_source']}: {head['device']}); {head['statistics']}")
    fields = [
        ("workload", lambda x: f"{x['phase']}, batch {x['batch']:,}, "
                               f"{'context' if x['phase'] == 'decode' else 'prompt'} {x['seq_len']:,}"),
        ("tokens/s", lambda x: f_int(x["tokens_per_s"])),
        ("tokens/s per GPU", lambda x: f_sig(x["tokens_per_s_per_gpu"])),
        ("latency ms", lambda x: f_ms(x["latency_ms"])),
        ("one pass ms / tick ms", lambda x: f"{f_ms(x['pass_ms'])} / {f_ms(x['tick_ms'])}"),
        ("micro-batches", lambda x: str(x["micro_batches"])),
        ("MFU", lambda x: f_pct(x["mfu"])),
        ("GPU busy", lambda x: f_pct(x["busy_fraction"])),
        ("memory per GPU GB", lambda x: f"{x['memory_gb']:.1f} (weights {x['memory_weights_gb']:.1f}, KV "
                                        f"{x['memory_kv_gb']:.1f}, buffers {x['memory_buffers_gb']:.1f})"),
        ("fits", lambda x: ("yes" if x["fits"] else "NO") + f" (limit {x['memory_limit_gb']:.1f} GB; max batch "
                           f"{x['max_batch']:,})"),
        ("cross-node B/token", lambda x: f"{f_int(x['cross_node_bytes_per_token'])} (flow objective "
                                         f"{f_int(x['flow_cross_node_bytes_per_token'])})"),
        ("peak NIC / link / NVLink", lambda x: f"{f_pct(x['peak_nic_util'])} / {f_pct(x['peak_link_util'])} / "
                                               f"{f_pct(x['peak_nvlink_util'])}"),
        ("bottleneck", lambda x: x["bottleneck"]),
    ]
    console.table(None, ["metric"] + [r["phase"] for r in rows],
                  [(name, *(fn(r) for r in rows)) for name, fn in fields])
    console.line(CROSS_NODE_NOTE)

