"""`moeplace compare`: the expert-per-GPU design against the 4-8-experts-per-GPU baseline, as a report."""

from __future__ import annotations

from pathlib import Path

import click

from moeplace.commands.options import (
    model_option,
    parse_pairs,
    seed_option,
    stats_option,
)
from moeplace.console import Console
from moeplace.costmodel.deployment import Options
from moeplace.errors import InputError
from moeplace.report.compare import CompareConfig, parse_sweep, run_comparison
from moeplace.report.document import f_ms, f_pct, f_sig
from moeplace.report.summary import REGIMES, verdict_word
from moeplace.report.write import write_report

OPTION_KNOBS = {"dense_ffn_hidden": int, "vocab_size": int, "reserve_gb": float, "micro_batches": int,
                "dense_layers": str}


def _ints(raw: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise InputError(f"expected integers separated by commas, got {raw!r}", field=name) from None
    if not vals or min(vals) < 1:
        raise InputError(f"expected positive integers, got {raw!r}", field=name)
    return vals


@click.command()
@model_option
@stats_option
@click.option("--profile", "profiles", multiple=True, metavar="PRESET|FILE",
              help="hardware profile: a preset (seed, h100-sxm, h200) or a calibrated .json; repeatable "
                   "[default: seed and h100-sxm]")
@click.option("--cluster", "cluster_ref", metavar="PRESET|FILE", default=None,
              help="cluster for a calibrated profile file [default: seed]")
@click.option("--plan", "plan_path", metavar="PLAN", default=None,
              help="the expert-per-GPU plan.json to compare (default: solve one)")
@click.option("--experts-per-gpu", "experts", default="1,4,8", show_default=True, metavar="E,..",
              help="designs: 1 is the seed's expert per GPU, e > 1 EP groups of experts/e GPUs")
@click.option("--attention", "attentions", default="dp,tp", show_default=True, metavar="dp,tp",
              help="baseline attention: dp (the ep flow's home GPU) and/or tp (tensor-parallel in the group)")
@click.option("--context", default=2048, show_default=True, type=click.IntRange(min=1),
              help="decode context and capacity prompt length, tokens")
@click.option("--batch", default=512, show_default=True, type=click.IntRange(min=1),
              help="decode batch for the context and experts-per-gpu sweeps")
@click.option("--prefill-batch", default=64, show_default=True, type=click.IntRange(min=1),
              help="prompts in flight for the prefill-by-length table")
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2",
              help="batch, experts-per-gpu, context or prompt; one table and one plot each; repeatable")
@click.option("--option", "knobs", multiple=True, metavar="KNOB=VALUE",
              help="cost-model knob: dense_ffn_hidden, vocab_size, reserve_gb, micro_batches, dense_layers")
@click.option("--no-overlap", is_flag=True, help="transfers never overlap compute")
@click.option("--no-attention-hop", is_flag=True,
              help="charge the chain flow's transfers only (the seed's reading: attention for free)")
@click.option("--solver", default=None, help="solver for the placements [default: solve's, lns]")
@click.option("--work-limit", default=None, type=click.FloatRange(min=1),
              help="deterministic work budget per placement [default: the solver's own, as `moeplace solve`: "
                   "the expert-per-GPU plan is the one solve writes]")
@seed_option
@click.option("--out", "out_dir", default="compare", show_default=True, type=click.Path(file_okay=False),
              help="output directory for report.md, report.html, comparison.json")
@click.option("--force", is_flag=True, help="replace an existing output directory")
@click.option("-q", "--quiet", is_flag=True, help="print nothing but errors")
def compare(model_ref, stats_ref, profiles, cluster_ref, plan_path, experts, attentions, context, batch,
            prefill_batch, sweeps, knobs, no_overlap, no_attention_hop, solver, work_limit, seed, out_dir, force,
            quiet) -> None:
    """Compare the seed's expert-per-GPU design with 4 and 8 experts per GPU and write a report.

    At equal GPU count (1,856) and at one model instance, decode and prefill, under the seed's numbers
    and the H100 datasheet: tokens/s, per GPU, latency, MFU, memory and fit, cross-node bytes, NIC and
    link utilization, and the seed's four claims. Writes OUT/report.md, OUT/report.html (plots, offline)
    and OUT/comparison.json.

    \b
    Examples:
      moeplace compare --out cmp/
      moeplace compare --plan plan/plan.json --profile h100-sxm --profile calib.json --out cmp/ --force
      moeplace compare --sweep batch=1,8,64,512 --sweep experts-per-gpu=1,4,8 --out sweep/
    """
    console = Console(quiet=quiet)
    _check_out(Path(out_dir), force)
    opts = parse_pairs(knobs, "--option", OPTION_KNOBS)
    options = Options(overlap=not no_overlap, attention_hop=not no_attention_hop, **opts)
    cfg = CompareConfig(worlds=tuple(profiles) or ("seed", "h100-sxm"), cluster_ref=cluster_ref, model_ref=model_ref,
                        stats_ref=stats_ref, plan_path=plan_path, seed=seed, solver=solver, work_limit=work_limit,
                        experts_per_gpu=_ints(experts, "--experts-per-gpu"),
                        attentions=tuple(a.strip() for a in attentions.split(",") if a.strip()),
                        context=context, batch=batch, prefill_batch=prefill_batch, options=options,
                        sweeps=tuple(parse_sweep(s) for s in sweeps))
    bad = [a for a in cfg.attentions if a not in ("dp", "tp")]
    if bad:
        raise InputError(f"must be dp and/or tp, got {bad[0]!r}", field="--attention")
    n_designs = sum(1 if e == 1 else len(cfg.attentions) for e in cfg.experts_per_gpu)
    steps = 2 * len(cfg.worlds) * n_designs + sum(len(v) for _, v in cfg.sweeps)
    with console.progress("comparing") as bar:
        task = bar.add_task("comparing", total=steps, info="")

        def progress(msg: str) -> None:
            bar.update(task, advance=1, info=msg)

        result = run_comparison(cfg, progress=progress)
    paths = write_report(result, out_dir, force=force)
    summary(console, result)
    console.line("wrote " + ", ".join(str(p) for p in paths))


def _check_out(out: Path, force: bool) -> None:
    """Refuse an occupied output directory before the work, as `atomic_dir` would after it."""
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", source=str(out))
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError("output directory exists and is not empty (use --force to replace it)", source=str(out))


def summary(console: Console, c) -> None:
    """The terminal view: the capacity rows at equal GPUs per world, then the claims."""
    for w in c.worlds:
        for point, what in (("decode-capacity", "decode"), ("prefill-capacity", "prefill")):
            rows = [x for x in c.rows if x["point"] == point and x["world"] == w["key"] and x["scale"] == "equal-gpus"]
            console.table(f"{w['key']}: {what} at capacity, context {c.config.context}, equal GPUs",
                          ["design", "batch", "tokens/s/GPU", "latency ms", "MFU", "memory GB", "fits",
                           "cross-node B/tok", "bottleneck"],
                          [(x["label"], f"{x['batch']:,}", f_sig(x["tokens_per_s_per_gpu"]), f_ms(x["latency_ms"]),
                            f_pct(x["mfu"]), f"{x['memory_gb']:.1f}", "yes" if x["fits"] else "no",
                            f"{x['cross_node_bytes_per_token']:,.0f}", x["bottleneck"]) for x in rows],
                          right=(1, 2, 3, 4, 5, 7))
            console.line()
    console.table("the seed's claims, per regime", ["claim", "hardware", "decode", "prefill", "numbers"],
                  [(cl["claim"], cl["world"], *(verdict_word((cl.get("regimes") or {}).get(r)) for r in REGIMES),
                    cl["number"]) for cl in c.claims])
    console.line()
