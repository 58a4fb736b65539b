"""`moeplace topology`: show, draw, export, route and load a fabric (generated or imported)."""

from __future__ import annotations

from pathlib import Path

import click

from moeplace.commands.options import cluster_option, cluster_overrides, topology_option
from moeplace.console import Console
from moeplace.errors import InputError
from moeplace.topologies.base import count

_fabric_options = (cluster_option, topology_option, cluster_overrides)


def fabric_options(fn):
    for deco in reversed(_fabric_options):
        fn = deco(fn)
    return fn


def _fabric(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map):
    from moeplace.placement.builder import build_fabric
    from moeplace.placement.fabric import sized_by_file
    from moeplace.placement.presets import load_cluster

    cluster = load_cluster(cluster_ref, num_nodes=nodes, gpus_per_node=gpus_per_node,
                           experts_per_gpu=experts_per_gpu, hosts=hosts, node_name_map=node_name_map)
    cluster, _ = sized_by_file(cluster, topology, nodes_given=nodes is not None or hosts is not None)
    return build_fabric(cluster, topology)


def _span(lo_hi: list[int]) -> str:
    return str(lo_hi[0]) if lo_hi[0] == lo_hi[1] else f"{lo_hi[0]}-{lo_hi[1]}"


def _gbps(x: float) -> str:
    return f"{x / 1000:,.1f} Tb/s" if x >= 1000 else f"{x:,.0f} Gb/s"


def _refuse_overwrite(path: str, force: bool) -> None:
    if Path(path).exists() and not force:
        raise InputError("exists (use --force to replace it)", source=path)


@click.group()
def topology() -> None:
    """Fabrics: generated (fat-tree, Dragonfly+) or imported (topology.conf, ibnetdiscover, host list).

    \b
    Examples:
      moeplace topology show
      moeplace topology show --topology dragonfly+ --json
      moeplace topology draw --out fabric.png
      moeplace topology export --out topology.conf
      moeplace topology show --topology ibnet.txt --hosts gpu[001-032]
      moeplace topology route node001:3 node002:5
      moeplace topology loads plan/
    """


@topology.command()
@fabric_options
@click.option("--no-bisection", is_flag=True, help="skip the bisection min-cut")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def show(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map,
         no_bisection, as_json) -> None:
    """Levels, switch counts, ports, tapers, tiers, diameter and bisection bandwidth of a fabric."""
    from moeplace.topologies.summary import fabric_summary

    fabric = _fabric(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map)
    s = fabric_summary(fabric, with_bisection=not no_bisection)
    if as_json:
        Console().json(s)
        return
    c = Console()
    c.line(s["description"])
    rails = ", rail-optimized" if s["rail_optimized"] else ""
    speeds = "/".join(f"{x:g}" for x in s.get("nic_gbps", [])) or "?"
    c.line(f"{s['nodes']} nodes x {s['gpus_per_node']} GPUs = {s['gpus']:,} GPUs; {s['nics_per_node']} NICs per node "
           f"at {speeds} Gb/s{rails}")
    c.line(f"{count(s['leaf_units'], 'leaf unit')} of {_span(s['nodes_per_unit'])} nodes; "
           f"{count(s['pods'], s['tier_labels'][3])} of {_span(s['nodes_per_pod'])} nodes")
    if "levels" in s:
        rows = [(r["level"], r["role"], r["switches"], r["ports"] or "?", r["ports_used"],
                 "-" if r["max_down_up"] is None else f"{r['max_down_up']:.2f}:1") for r in s["levels"]]
        c.table(None, ["level", "role", "switches", "ports", "most used", "down:up"], rows, right=(0, 2, 3, 4, 5))
    rows = [(r["tier"], f"{r['node_pairs']:,}", r["min_hops"] if r["min_hops"] == r["max_hops"]
             else f"{r['min_hops']}-{r['max_hops']}", f"{r['max_latency_us']:.2f}") for r in s["tiers"]]
    c.table(None, ["tier", "node pairs", "hops", "network us"], rows, right=(1, 2, 3))
    line = f"diameter {s['diameter_hops']} hops"
    if "bisection_gbps" in s:
        full = s["full_bisection_gbps"]
        share = s["bisection_gbps"] / full * 100 if full else 0.0
        line += f"; bisection {_gbps(s['bisection_gbps'])} of {_gbps(full)} non-blocking ({share:.0f}%)"
    c.line(line)


@topology.command()
@fabric_options
@click.option("--out", "out_path", default="fabric.png", show_default=True, metavar="FILE",
              help="picture to write: .png, .svg or .pdf")
@click.option("--detail", type=click.Choice(["auto", "grouped", "full"]), default="auto", show_default=True,
              help="one box per switch (full), per group (grouped), or full up to 64 hosts and switches (auto)")
@click.option("--force", is_flag=True, help="replace an existing file")
def draw(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map,
         out_path, detail, force) -> None:
    """Draw the fabric (matplotlib), grouped so that hundreds of nodes stay readable."""
    from moeplace.fileio import write_bytes
    from moeplace.topologies.draw import draw_fabric

    fabric = _fabric(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map)
    _refuse_overwrite(out_path, force)
    write_bytes(out_path, draw_fabric(fabric, out_path, detail=detail))
    Console().line(f"wrote {out_path}")


@topology.command()
@fabric_options
@click.option("--out", "out_path", default="topology.conf", show_default=True, metavar="FILE",
              help="Slurm topology.conf to write")
@click.option("--force", is_flag=True, help="replace an existing file")
def export(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map,
           out_path, force) -> None:
    """Write the fabric as a Slurm topology.conf (topology/tree); importing it gives the same tiers."""
    from moeplace.fileio import write_text
    from moeplace.topologies.slurm import topology_conf

    fabric = _fabric(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map)
    _refuse_overwrite(out_path, force)
    write_text(out_path, topology_conf(fabric))
    Console().line(f"wrote {out_path} ({fabric.num_nodes} nodes)")


def _gpu(fabric, text: str, what: str) -> int:
    host, sep, local = text.rpartition(":")
    try:
        if not sep:
            g = int(text)
        else:
            g = fabric.hosts.index(host) * fabric.gpus_per_node + int(local)
            if not 0 <= int(local) < fabric.gpus_per_node:
                raise ValueError
    except ValueError:
        raise InputError(f"expected HOST:LOCAL_GPU or a global GPU index, got {text!r}", field=what) from None
    if not 0 <= g < fabric.num_gpus:
        raise InputError(f"GPU {g} outside 0..{fabric.num_gpus - 1}", field=what)
    return g


@topology.command()
@fabric_options
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@click.option("--pxn/--no-pxn", default=None, help="NVLink to the rail-matched GPU first [default: the fabric's]")
@click.option("--json", "as_json", is_flag=True, help="print the route as JSON")
def route(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map,
          src, dst, pxn, as_json) -> None:
    """The path between two GPUs (HOST:LOCAL_GPU or global index): NVLink, NICs, switches, tier.

    \b
    Example: moeplace topology route node001:3 node002:5 --no-pxn
    """
    from moeplace.topologies.gpuview import gpu_route

    fabric = _fabric(cluster_ref, topology, nodes, gpus_per_node, experts_per_gpu, hosts, node_name_map)
    r = gpu_route(fabric, _gpu(fabric, src, "SRC"), _gpu(fabric, dst, "DST"), pxn=pxn)
    if as_json:
        Console().json(r)
        return
    c = Console()
    c.line(" -> ".join(r["steps"]))
    c.line(f"tier {r['tier']}; {r['nvlink_hops']} NVLink hop(s), {r['network_hops']} network links, "
           f"{r['equal_cost_paths']:,} equal-cost path(s), network latency {r['network_latency_us']:.2f} us")


@topology.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=True))
@click.option("--stats", "stats_ref", metavar="FILE", default=None,
              help="statistics or trace to route instead of the plan's own (synthetic ones are regenerated)")
@click.option("--routing", type=click.Choice(["ecmp", "minimal", "valiant"]), default=None,
              help="[default: ecmp on fat-trees and imports, the spec's routing on Dragonfly+]")
@click.option("--tokens-per-s", "rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="token rate for utilizations [default: report the rate that fills the busiest link]")
@click.option("--top", default=8, show_default=True, type=click.IntRange(min=1), help="busiest links to list")
@click.option("--json", "as_json", is_flag=True, help="print the loads as JSON")
def loads(plan_path, stats_ref, routing, rate, top, as_json) -> None:
    """Route a plan's traffic over its fabric: busiest links, NIC and NVLink bytes per token."""
    from moeplace.costmodel.linkloads import plan_link_loads

    r = plan_link_loads(plan_path, stats_ref=stats_ref, routing=routing, rate=rate, top=top)
    if as_json:
        Console().json(r)
        return
    c = Console()
    c.line(f"{r['plan']}: {r['fabric']}")
    c.line(f"routing {r['routing']}, PXN {'on' if r['pxn'] else 'off'}; {r['network_bytes_per_token']:,.0f} B/token "
           f"leave NICs; busiest NIC {r['max_nic_bytes_per_token']:,.0f} B/token; busiest GPU NVLink "
           f"{r['max_nvlink_bytes_per_token']:,.0f} B/token")
    rows = [(x["link"], f"{x['bytes']:,.0f}", _gbps(x["capacity_gbps"]), f"{x['utilization']:.1%}" if rate else
             f"{x['time_s'] * 1e9:.2f}") for x in r["busiest"]]
    c.table(None, ["link", "B/token", "capacity", "utilization" if rate else "ns/token"], rows, right=(1, 2, 3))
    c.line(f"the busiest link is full at {r['saturation_tokens_per_s']:,.0f} tokens/s"
           + (f"; at {rate:,.0f} tokens/s its utilization is {r['max_link_utilization']:.1%}" if rate else ""))
