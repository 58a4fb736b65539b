"""Options shared between commands, defined once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from moeplace.errors import InputError

F = Callable[..., Any]

HOSTS_HELP = ("host names of the nodes in node order, a Slurm hostlist: gpu[001-232] or a1,a2 "
              "[default: node001, node002, ...]")


class Finite(click.FloatRange):
    """A float in a range that is a number: `inf` and `nan` are refused (a FloatRange lets `nan` through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(rv, param, ctx)


MAX_SEED = 2**63 - 1
MAX_NODES = 65_536
MAX_GPUS_PER_NODE = 1_024
MAX_EXPERTS_PER_GPU = 1_024


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return deco


model_option = click.option("--model", "model_ref", metavar="PRESET|FILE", default=None,
                            help="model preset (see `moeplace presets`) or a .json/.toml file [default: seed]")
cluster_option = click.option("--cluster", "cluster_ref", metavar="PRESET|FILE", default=None,
                              help="cluster preset or a .json/.toml file [default: seed]")
topology_option = click.option("--topology", default=None, metavar="KIND|FILE",
                               help="[default: the cluster's own, fat-tree for the presets] fabric: fat-tree or "
                                    "dragonfly+ (generated, with the cluster's topology "
                                    "parameters), a generator .toml, or a real cluster's Slurm topology.conf, "
                                    "ibnetdiscover output or host list (see docs/topologies.md)")
STATS_FORMATS = ("moeplace statistics .npz (`moeplace stats build`) or a trace: JSON lines, .npy/.npz `topk` "
                 "[tokens, MoE layers, k], SGLang .pt, TensorRT-LLM statistics, CSV counts")
stats_option = click.option("--stats", "stats_ref", metavar="FILE", default=None,
                            help=f"routing statistics: {STATS_FORMATS} [default: synthetic]")
flow_option = click.option("--flow", default="chain", show_default=True, metavar="NAME",
                           help="flow model: chain (expert per GPU) or ep (classic expert parallelism)")
dedup_option = click.option("--dedup/--no-dedup", default=True, show_default=True,
                            help="node-level dedup: one network crossing per distinct remote node")
seed_option = click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED),
                           help="seed for synthetic statistics and the solver")
cluster_overrides = _compose(
    click.option("--nodes", type=click.IntRange(1, MAX_NODES), default=None,
                 help="override the cluster's node count"),
    click.option("--gpus-per-node", type=click.IntRange(1, MAX_GPUS_PER_NODE), default=None,
                 help="override GPUs per node"),
    click.option("--experts-per-gpu", type=click.IntRange(1, MAX_EXPERTS_PER_GPU), default=None,
                 help="override expert slots per GPU"),
    click.option("--hosts", default=None, metavar="HOSTLIST", help=HOSTS_HELP),
    click.option("--node-name-map", "node_name_map", default=None, metavar="FILE",
                 help="names for an ibnetdiscover file's nodes: a GUID and a quoted name per line, the format of "
                      "ibnetdiscover's own --node-name-map"),
)
tier_cost_option = click.option("--tier-cost", "tier_costs", multiple=True, metavar="TIER=COST",
                                help="override a tier's cost per byte (nvlink, leaf, pod, core), repeatable")
synth_option = click.option("--synth", "synth", multiple=True, metavar="KNOB=VALUE",
                            help="synthetic statistics knobs: skew, coact, affinity, cluster_size, num_tokens")


def parse_pairs(values: tuple[str, ...], option: str, allowed: dict[str, type]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in allowed:
            raise InputError(f"expected KEY=VALUE with KEY one of {', '.join(allowed)}, got {raw!r}", field=option)
        try:
            out[key] = allowed[key](value)
        except ValueError:
            raise InputError(f"{key} must be a {allowed[key].__name__}, got {value!r}", field=option) from None
    return out
