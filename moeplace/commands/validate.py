"""`moeplace validate`: the cost model's prediction against a runtime measurement, per layer and end to end."""

from __future__ import annotations

from pathlib import Path

import click

from moeplace.console import Console
from moeplace.fileio import dumps_json, write_text


@click.command()
@click.argument("run_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("measured_path", metavar="MEASURED", type=click.Path(dir_okay=False))
@click.option("--profile", "profile_ref", metavar="PRESET|FILE", default=None,
              help="hardware profile [default: DIR/profile.json if present, else the plan's cluster preset]")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="also write the report here (.md, or .json for the machine-readable form)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def validate(run_dir: str, measured_path: str, profile_ref: str | None, out_path: str | None, as_json: bool) -> None:
    """Compare MEASURED (a runtime's measured.json) with the cost model's prediction for the plan in DIR.

    DIR holds plan.json (the plan directory, or the launch directory emitted beside it). The prediction uses
    the profile's measured expert and transfer curves; the headline is the median and worst |error|.

    \b
    Examples:
      moeplace calibrate --out profile.json
      moeplace validate plan/ run/measured.json --profile profile.json --out run/validation.md
    """
    from moeplace.costmodel.presets import default_profile_for, load_profile
    from moeplace.runmodel.measured import load_measured
    from moeplace.runmodel.tiers import bytes_rows
    from moeplace.runmodel.validation import compare, headline, load_run_plan

    pp = load_run_plan(run_dir)
    plan_path = pp.path
    measured = load_measured(measured_path)
    if profile_ref is None:
        local = Path(run_dir) / "profile.json"
        profile_ref = str(local) if local.is_file() else default_profile_for(pp.plan.cluster.name)
    profile = load_profile(profile_ref)
    rows = compare(pp, measured, profile)
    head = headline(rows)
    traffic = bytes_rows(pp, measured)
    report = {
        "plan": str(plan_path), "measured": str(measured_path), "profile": profile.name,
        "profile_source": profile.source, "device": measured.device, "world_size": measured.world_size,
        "engine": measured.engine, "transport": measured.transport, "micro_batches": measured.micro_batches,
        "tokens_per_step": measured.tokens_per_step, "tokens_per_gpu": measured.tokens_per_gpu,
        "rows": [{"what": r.what, "measured_us": round(r.measured_us, 2), "predicted_us": round(r.predicted_us, 2),
                  "error": round(r.error, 4), "expert_us": round(r.expert_us, 2), "transfer_us": round(r.transfer_us, 2)}
                 for r in rows],
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in head.items()},
        "dedup": measured.dedup, "bytes_per_step": traffic,
    }
    if out_path:
        text = dumps_json(report) if out_path.endswith(".json") else report_markdown(report)
        write_text(out_path, text)
    console = Console()
    if as_json:
        console.json(report)
        return
    console.line(f"{measured.device}, {measured.world_size} GPUs, {measured.tokens_per_gpu:g} tokens per GPU, "
                 f"{measured.engine}/{measured.transport}, {measured.micro_batches} micro-batches; profile "
                 f"{profile.name} ({profile.source})")
    console.table(None, ["", "measured µs", "predicted µs", "error", "experts µs", "transfers µs"],
                  [_cells(r) for r in report["rows"]], right=(1, 2, 3, 4, 5))
    console.line(f"error: median {head['median_abs_error']:.1%}, worst {head['worst_abs_error']:.1%} "
                 f"over {head['points']} points")
    console.table(None, ["bytes per step", "measured", "predicted (objective)", "measured / predicted"],
                  [_byte_cells(r) for r in traffic], right=(1, 2, 3))


def _cells(r: dict) -> list[str]:
    return [r["what"], f"{r['measured_us']:,.1f}", f"{r['predicted_us']:,.1f}", f"{r['error']:+.1%}",
            f"{r['expert_us']:,.1f}", f"{r['transfer_us']:,.1f}"]


def _byte_cells(r: dict) -> list[str]:
    return [r["tier"], f"{r['measured_bytes']:,.0f}", f"{r['predicted_bytes']:,.0f}",
            "-" if r["ratio"] is None else f"{r['ratio']:.3f}"]


def report_markdown(report: dict) -> str:
    lines = ["# Validation: predicted against measured",
             "",
             f"- run: {report['measured']} ({report['device']}, {report['world_size']} GPUs, "
             f"{report['tokens_per_gpu']:g} tokens per GPU, engine {report['engine']}/{report['transport']}, "
             f"{report['micro_batches']} micro-batches)",
             f"- plan: {report['plan']}",
             f"- profile: {report['profile']} ({report['profile_source']})",
             f"- error: median {report['median_abs_error']:.1%}, worst {report['worst_abs_error']:.1%} over "
             f"{report['points']} points",
             "",
             "| | measured µs | predicted µs | error | experts µs | transfers µs |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in report["rows"]]
    lines += ["", f"Bytes per step by tier (runtime dedup: {report.get('dedup') or 'not recorded'}; predicted: the "
              "objective on the plan's statistics, scaled to the run's tokens and row size):", "",
              "| bytes per step | measured | predicted (objective) | measured / predicted |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(_byte_cells(r)) + " |" for r in report.get("bytes_per_step", [])]
    return "\n".join(lines) + "\n"
