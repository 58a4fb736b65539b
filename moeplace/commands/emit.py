"""`moeplace emit`: the launch artifacts of a plan (rank files, Slurm, torchrun, engine exports)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from moeplace.commands.options import HOSTS_HELP
from moeplace.console import Console
from moeplace.launch.emit import emit_launch
from moeplace.launch.render import LaunchFiles
from moeplace.topologies.hostlist import compress_hostlist


@click.command()
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--force", is_flag=True, help="replace an existing output directory")
@click.option("--hosts", default=None, metavar="HOSTLIST", help="rename the plan's nodes: " + HOSTS_HELP)
@click.option("--master-port", type=int, default=None, help="rendezvous port on rank 0's host [default: 29500]")
@click.option("--rdzv-port", type=int, default=None, help="torchrun c10d rendezvous port [default: 29400]")
@click.option("--tokens-per-step", type=int, default=None, help="runtime tokens per step [default: 4096]")
@click.option("--capacity-factor", type=float, default=None,
              help="runtime buffer slots over the mean tokens per rank [default: 2.0]")
@click.option("--micro-batches", type=int, default=None, help="runtime micro-batches in flight [default: 2]")
@click.option("--job-name", default=None, help="Slurm job name [default: moeplace-MODEL]")
@click.option("--partition", default=None, help="Slurm partition")
@click.option("--account", default=None, help="Slurm account")
@click.option("--time", "time_limit", default=None, metavar="HH:MM:SS", help="Slurm time limit")
@click.option("--slurm-gpus/--no-slurm-gpus", default=None,
              help="request --gpus-per-node in job.sbatch [default: yes]")
@click.option("--cpus-per-rank", type=int, default=None, help="cores per rank in rankfile.openmpi [default: 1]")
@click.option("--trace", default=None, metavar="FILE",
              help="the per-token trace the plan was made from, for the runtime to replay")
@click.option("-q", "--quiet", is_flag=True, help="print nothing but errors")
def emit(plan_path, out_dir, force, hosts, master_port, rdzv_port, tokens_per_step, capacity_factor, micro_batches,
         job_name, partition, account, time_limit, slurm_gpus, cpus_per_rank, trace, quiet) -> None:
    """Write the files that launch PLAN (a plan.json or its directory) into a new directory.

    rankfile.tsv, hostfile (SLURM_HOSTFILE), job.sbatch + moeplace-rank.sh, torchrun.sh, hostfile.deepspeed,
    hostfile.mpich, rankfile.openmpi, manifest.json (what the runtime reads), engines/ (SGLang and
    TensorRT-LLM placements when the plan has a layout they run) and artifacts.json. `moeplace solve` writes
    the same files beside plan.json unless --no-emit.

    \b
    Examples:
      moeplace emit plan/ --out launch/
      moeplace emit plan/plan.json --out launch/ --hosts gpu[001-232] --partition batch --force
    """
    result = emit_launch(plan_path, out_dir, hosts=hosts, trace=trace, force=force, master_port=master_port,
                         rdzv_port=rdzv_port, tokens_per_step=tokens_per_step, capacity_factor=capacity_factor,
                         micro_batches=micro_batches, job_name=job_name, partition=partition, account=account,
                         time=time_limit, slurm_gpus=slurm_gpus, cpus_per_rank=cpus_per_rank)
    console = Console(quiet=quiet)
    print_launch(console, result.launch, str(result.out))


def print_launch(console: Console, launch: LaunchFiles, out: str) -> None:
    """What was written and how to start it; engine refusals and warnings in full."""
    m = json.loads(launch.files["manifest.json"])
    d = Path(out)
    hosts = compress_hostlist(m["hosts"])
    console.line(f"wrote {len(launch.files)} launch files to {d} for plan {launch.plan_sha256[:12]} "
                 f"({m['model']['name']}: {m['world_size']:,} ranks on {hosts})")
    if launch.placeholder_hosts:
        console.line(f"  Slurm:     NOT READY: {hosts} are placeholder names, and job.sbatch refuses them; give the "
                     f"real hosts: moeplace emit {d} --out {d}-hosts --hosts 'HOSTLIST'")
    else:
        console.line(f"  Slurm:     cd {d} && sbatch job.sbatch")
    console.line(f"  torchrun:  on every host: {d / 'torchrun.sh'} static   (or c10d)")
    reason = launch.engines.get("sglang")
    if reason is None:
        console.line(f"  engines:   {d / 'engines'}/ (SGLang --init-expert-location, TensorRT-LLM load balancer, "
                     "vLLM initial maps)")
    else:
        console.line(f"  engines:   not written: {reason}")
    for w in launch.warnings:
        console.line(f"  warning:   {w}")
