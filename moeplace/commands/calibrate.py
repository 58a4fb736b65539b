"""`moeplace calibrate`: measure this machine's GPUs and write the hardware profile the cost model reads."""

from __future__ import annotations

import platform

import click

from moeplace.commands.options import model_option
from moeplace.console import Console
from moeplace.errors import InputError
from moeplace.fileio import dumps_json, write_text


@click.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="profile JSON to write")
@model_option
@click.option("--gpus", type=click.IntRange(min=1), default=None,
              help="GPUs of this host for the transfer curves [default: all visible]")
@click.option("--name", default=None, help="profile name [default: the GPU's name, lower-case]")
@click.option("--network-from", "network_from", default="h100-sxm", show_default=True, metavar="PRESET",
              help="profile preset whose network numbers are copied (one host cannot measure a network)")
@click.option("--no-triton", is_flag=True,
              help="time cuBLAS only for the expert curve (skip the small-batch Triton kernel)")
@click.option("--force", is_flag=True, help="replace an existing profile file")
@click.option("--json", "as_json", is_flag=True, help="print the profile as JSON")
def calibrate(out_path: str, model_ref: str | None, gpus: int | None, name: str | None, network_from: str,
              no_triton: bool, force: bool, as_json: bool) -> None:
    """Measure the expert GEMM curve, the GEMM and HBM ceilings and the NVLink transfer curves of this host.

    Needs PyTorch with CUDA (pip install 'moeplace[runtime]'). Takes a minute or two.

    \b
    Examples:
      moeplace calibrate --out profile.json
      moeplace calibrate --model mixtral-8x7b --gpus 4 --out mixtral-h100.json
    """
    from pathlib import Path

    from moeplace.costmodel.presets import load_profile
    from moeplace.placement.presets import load_model
    from moeplace.runtime.deps import import_torch

    if Path(out_path).exists() and not force:
        raise InputError("exists (use --force to replace it)", source=out_path)
    torch = import_torch()
    if not torch.cuda.is_available():
        raise InputError("calibration measures GPUs, and torch sees no CUDA device", field="--out")
    model = load_model(model_ref)
    base = load_profile(network_from)
    world = gpus or torch.cuda.device_count()
    if world > torch.cuda.device_count():
        raise InputError(f"--gpus {world} but {torch.cuda.device_count()} CUDA devices are visible", field="--gpus")
    from moeplace.runtime import calibrate as cal
    from moeplace.runmodel.profilefit import build_profile

    console = Console(stderr=True, quiet=as_json)
    console.line("measuring GEMM and HBM ceilings ...")
    ceil = cal.ceilings()
    console.line(f"  {ceil['bf16_tflops']} TFLOP/s bf16, {ceil['hbm_tbps']} TB/s copy; expert curve ...")
    expert = cal.expert_curve(model, triton=not no_triton)
    curves = {"nccl-a2a": [], "symm": [], "p2p": []}
    if world >= 2:
        console.line(f"  transfer curves among {world} GPUs ...")
        curves = cal.transfer_curves(world, model.hidden, model=model)
    dev = torch.cuda.get_device_name(0)
    props = torch.cuda.get_device_properties(0)
    software = {"torch": torch.__version__, "cuda": str(torch.version.cuda), "python": platform.python_version(),
                "nccl": ".".join(str(x) for x in torch.cuda.nccl.version())}
    profile = build_profile(name=name or dev.lower().replace(" ", "-"), device=dev, memory_gb=props.total_memory / 1e9,
                            software=software, ceilings=ceil, model=model, expert=expert, curves=curves,
                            world=max(world, 2), network_from=base)
    write_text(out_path, dumps_json(profile.model_dump(mode="json")))
    if as_json:
        Console().json(profile.model_dump(mode="json"))
        return
    out = Console()
    out.line(f"wrote {out_path}: {dev}, {profile.bf16_tflops} TFLOP/s, {profile.hbm_tbps} TB/s, NVLink "
             f"{profile.nvlink_gbps} GB/s + {profile.nvlink_latency_us} us")
    out.table("expert curve", ["tokens", "µs", "kernel"], [(p["tokens"], f"{p['us']:.1f}", p["impl"]) for p in expert],
              right=(0, 1))
