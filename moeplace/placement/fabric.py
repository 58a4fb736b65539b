"""`--topology`: a generator name, a generator file, or a real cluster's description, made into a `Fabric`.

    fat-tree, dragonfly+        the generator, with the cluster's topology parameters when it is that kind
    FILE.toml / FILE.json       a generator spec (`kind = "fat-tree"` or `"dragonfly+"` and its fields)
    any other FILE              sniffed by its first significant line: `SwitchName=`/`BlockName=` is a Slurm
                                topology.conf, `vendid=`/`Switch 41 "S-..."` is ibnetdiscover output,
                                anything else a host list

An imported file names the cluster's hosts; the plan uses `--hosts` of them when given, else all of them.
With neither `--nodes` nor `--hosts` (nor hosts in the cluster file), the cluster is the file's hosts
(`sized_by_file`; those with the cluster's NIC count when the file's hosts differ, leaving login and storage
nodes out); with `--nodes`, their count must equal it. The fabric's `params` record how to build it again:
the resolved generator spec, or the file's name, path and sha256 (`rebuild_fabric`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter, ValidationError

from moeplace.errors import InputError
from moeplace.fileio import file_digest, load_mapping
from moeplace.placement.schema import ClusterSpec
from moeplace.topologies.base import DRAGONFLY_LABELS, Fabric, default_hosts
from moeplace.topologies.dragonfly import dragonfly_plus, dragonfly_wiring
from moeplace.topologies.fattree import fat_tree, fat_tree_wiring
from moeplace.topologies.hostlist import expand_hostlist
from moeplace.topologies.ibnet_lines import is_ibnet_line, is_prompt
from moeplace.topologies.imports import Imported
from moeplace.topologies.specs import DragonflyPlusSpec, FatTreeSpec, TopologySpec

GENERATORS = {"fat-tree": FatTreeSpec, "dragonfly+": DragonflyPlusSpec}
ALIASES = {"fattree": "fat-tree", "dragonfly-plus": "dragonfly+", "dragonflyplus": "dragonfly+", "df+": "dragonfly+"}
FILE_KINDS = ("topology.conf", "ibnetdiscover", "hostlist", "generator-file")
KNOWN = "fat-tree, dragonfly+, or a file: generator .toml/.json, Slurm topology.conf, ibnetdiscover output, host list"


def cluster_hosts(cluster: ClusterSpec) -> tuple[str, ...]:
    if cluster.hosts is None:
        return default_hosts(cluster.num_nodes)
    hosts = tuple(expand_hostlist(cluster.hosts))
    if len(hosts) != cluster.num_nodes:
        raise InputError(f"hostlist {cluster.hosts!r} names {len(hosts)} hosts, the cluster has "
                         f"{cluster.num_nodes} nodes", field="hosts")
    seen: dict[str, int] = {}
    for i, h in enumerate(hosts):
        if seen.setdefault(h, i) != i:
            raise InputError(f"hostlist {cluster.hosts[:80]!r} names host {h} twice (nodes {seen[h]} and {i})",
                             field="hosts")
    return hosts


def imported_file(topology: str | None) -> Path | None:
    """The path when `--topology` names a cluster's own file (topology.conf, ibnetdiscover, host list)."""
    if topology is None or ALIASES.get(topology.lower(), topology.lower()) in GENERATORS:
        return None
    path = Path(topology)
    if not path.is_file() or path.suffix.lower() in (".toml", ".json"):
        return None
    return path


def sized_by_file(cluster: ClusterSpec, topology: str | None, *, nodes_given: bool) -> tuple[ClusterSpec, str | None]:
    """The cluster with the nodes of its `--topology` file when no node count or host names were given,
    and the file's name then (None: the cluster as it was). `solve` and `topology` size clusters by it."""
    path = imported_file(topology)
    if path is None:
        return cluster, None
    imp = read_imported(cluster, path)  # read even when sized otherwise: a bad file fails first
    if nodes_given or cluster.hosts is not None:
        return cluster, None
    update: dict = {"num_nodes": len(imp.hosts)}
    nics = getattr(imp.wiring, "nics", None)
    if nics is not None and len({len(nics[h]) for h in imp.hosts}) > 1:
        # hosts with other NIC counts (login, storage nodes) are not GPU nodes of the cluster
        gpu_hosts = [h for h in imp.hosts if len(nics[h]) == cluster.nics_per_node]
        if gpu_hosts:
            update = {"num_nodes": len(gpu_hosts), "hosts": ",".join(gpu_hosts)}
    if update == {"num_nodes": cluster.num_nodes}:
        return cluster, str(path)
    return ClusterSpec.model_validate({**cluster.model_dump(), **update}), str(path)


def generate(cluster: ClusterSpec, spec: FatTreeSpec | DragonflyPlusSpec,
             hosts: tuple[str, ...] | None = None) -> Fabric:
    build = fat_tree if spec.kind == "fat-tree" else dragonfly_plus
    return build(spec, num_nodes=cluster.num_nodes, gpus_per_node=cluster.gpus_per_node,
                 nics_per_node=cluster.nics_per_node, link_gbps=cluster.nic_gbps, hosts=hosts or cluster_hosts(cluster))


def resolve_fabric(cluster: ClusterSpec, topology: str | None = "fat-tree") -> Fabric:
    """The fabric named by `--topology` for `cluster`."""
    topology = topology or cluster.topology.kind
    name = ALIASES.get(topology.lower(), topology.lower())
    if name in GENERATORS:
        if cluster.node_name_map:
            raise InputError(f"names the nodes of ibnetdiscover output, and --topology {topology} is generated",
                             field="--node-name-map")
        spec = cluster.topology if cluster.topology.kind == name else GENERATORS[name]()
        return generate(cluster, spec)
    path = Path(topology)
    if not path.is_file():
        if path.suffix or "/" in topology:
            raise InputError("file not found", source=topology, field="--topology")
        raise InputError(f"unknown topology {topology!r} (known: {KNOWN})", field="--topology")
    return fabric_from_file(cluster, path)


def sniff(text: str) -> str:
    """The format of a topology file from its first significant line (a BOM and shell prompts skipped)."""
    for line in text.lstrip("\ufeff").splitlines():
        s = line.strip()
        if not s or s.startswith("#") or is_prompt(s):
            continue
        low = s.lower()
        if low.startswith(("switchname=", "blockname=", "blocksizes=", "ringname=")):
            return "topology.conf"
        if is_ibnet_line(s):
            return "ibnetdiscover"
        return "hostlist"
    return "hostlist"


def read_imported(cluster: ClusterSpec, path: Path) -> Imported:
    """The whole file as an `Imported` (every host it names)."""
    from moeplace.topologies.hostfile import parse_host_list
    from moeplace.topologies.ibnet import parse_ibnetdiscover
    from moeplace.topologies.ibnet_names import read_node_name_map
    from moeplace.topologies.slurm import parse_topology_conf

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(path)) from None
    fmt = sniff(text)
    if cluster.node_name_map and fmt != "ibnetdiscover":
        raise InputError(f"--node-name-map names the nodes of ibnetdiscover output, and this is a {fmt} file",
                         source=str(path))
    if fmt == "topology.conf":
        imp = parse_topology_conf(text, str(path), nics_per_node=cluster.nics_per_node, nic_gbps=cluster.nic_gbps)
    elif fmt == "ibnetdiscover":
        names, record = read_node_name_map(cluster.node_name_map)
        imp = parse_ibnetdiscover(text, str(path), name_map=names, map_source=cluster.node_name_map)
        if record:
            imp.params["node_name_map"] = record
    else:
        hosts = tuple(parse_host_list(text, str(path), gpus_per_node=cluster.gpus_per_node))
        spec = cluster.topology
        wiring = fat_tree_wiring if spec.kind == "fat-tree" else dragonfly_wiring
        try:
            w, desc, params = wiring(spec, hosts, cluster.nics_per_node, cluster.nic_gbps)
        except InputError as exc:
            raise InputError(f"{len(hosts)} hosts: {exc}", source=str(path)) from None
        imp = Imported(kind="hostlist", source=str(path), wiring=w, hosts=list(hosts),
                       summary=f"host list {path.name} on a {desc}", params={"spec": params["spec"]},
                       switch_latency_us=spec.switch_latency_us,
                       labels=DRAGONFLY_LABELS if spec.kind == "dragonfly+" else None)
    imp.params.update(source=fmt, file=path.name, path=str(path), sha256=hashlib.sha256(raw).hexdigest())
    return imp


def fabric_from_file(cluster: ClusterSpec, path: Path) -> Fabric:
    if path.suffix.lower() in (".toml", ".json"):
        fabric = generate(cluster, load_generator_spec(path))
        return _with_params(fabric, file=path.name, path=str(path), sha256=file_digest(path))
    imp = read_imported(cluster, path)
    fabric = imp.fabric(choose_hosts(cluster, imp.hosts, str(path)), cluster.gpus_per_node)
    _check_nics(cluster, fabric, str(path))
    return fabric


def _check_nics(cluster: ClusterSpec, fabric: Fabric, source: str) -> None:
    """The cost model reads NICs from the cluster spec: an imported fabric must agree with it."""
    net = fabric.network
    speeds, counts = np.unique(net.nic_gbps_NR.round(3), return_counts=True)
    common = float(speeds[np.argmax(counts)])
    if net.nics_per_node != cluster.nics_per_node or common != cluster.nic_gbps:
        raise InputError(f"its hosts have {net.nics_per_node} NICs of {common:g} Gb/s, the cluster "
                         f"{cluster.nics_per_node} of {cluster.nic_gbps:g} Gb/s: set nics_per_node and nic_gbps in "
                         f"a --cluster file", source=source)


def choose_hosts(cluster: ClusterSpec, available: list[str], source: str) -> list[str]:
    if cluster.hosts is not None:
        return list(cluster_hosts(cluster))
    if len(available) != cluster.num_nodes:
        raise InputError(f"names {len(available)} hosts and the cluster has {cluster.num_nodes} nodes: give "
                         f"--nodes {len(available)}, or pick {cluster.num_nodes} of them with --hosts", source=source)
    return list(available)


def load_generator_spec(path: Path) -> FatTreeSpec | DragonflyPlusSpec:
    data = load_mapping(path)
    if set(data) == {"topology"} and isinstance(data["topology"], dict):
        data = data["topology"]
    if data.get("kind") not in GENERATORS:
        raise InputError(f"kind must be one of {', '.join(GENERATORS)} (got {data.get('kind')!r})", source=str(path),
                         field="kind")
    try:
        return TypeAdapter(TopologySpec).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"][1:]) or "(top level)"
        raise InputError(f"{err['msg']} (got {err.get('input')!r})", source=str(path), field=loc) from None


def rebuild_fabric(cluster: ClusterSpec, kind: str, params: dict, *, search_dirs: tuple[Path, ...] = ()) -> Fabric:
    """The fabric a plan was made on, from its topology record (`kind`, `params`)."""
    source = params.get("source")
    if source == "generator" and "spec" in params:
        fabric = generate(cluster, TypeAdapter(TopologySpec).validate_python(params["spec"]))
        return _with_params(fabric, **{k: params[k] for k in ("file", "path", "sha256") if k in params})
    if source in FILE_KINDS:
        if isinstance(params.get("node_name_map"), dict):
            found = find_recorded_file(params["node_name_map"], search_dirs)
            cluster = cluster.model_copy(update={"node_name_map": str(found)})
        return fabric_from_file(cluster, find_recorded_file(params, search_dirs))
    return resolve_fabric(cluster, kind)


def find_recorded_file(params: dict, search_dirs: tuple[Path, ...]) -> Path:
    """The topology file a plan names, where its sha256 still matches.

    A plan is data, so the file it names is opened only inside `search_dirs` (the plan's folder and the
    current directory, the places the user pointed at): at its recorded path when that lies inside one of
    them, or under its recorded name there. A plan naming `/etc/shadow` (or a link beside it pointing there)
    opens nothing."""
    recorded = Path(str(params.get("path", params.get("file", ""))))
    name = Path(str(params.get("file") or recorded.name)).name
    candidates: list[Path] = []
    for d in search_dirs:
        for c in (recorded if recorded.is_absolute() else d / recorded, d / name):
            if name and _inside(c, d) and c not in candidates:
                candidates.append(c)
    changed = None
    for c in candidates:
        if c.is_file():
            if file_digest(c) == params.get("sha256"):
                return c
            changed = c
    if changed is not None:
        raise InputError(f"the plan was made on a different version of this file (sha256 "
                         f"{str(params.get('sha256'))[:12]}...)", source=str(changed))
    digest = str(params.get("sha256"))[:12]
    raise InputError(f"the plan was made on topology file {name or '?'} (sha256 {digest}...), recorded at "
                     f"{str(recorded)[:200]!r}: a plan's topology file is opened only beside the plan or in the "
                     f"current directory; copy it there or run from its folder", source="topology")


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return False


def _with_params(fabric: Fabric, **extra) -> Fabric:
    import dataclasses

    return dataclasses.replace(fabric, params={**fabric.params, **extra})

