"""`moeplace stats`: build, show, compare, profile and synthesize routing statistics."""

from __future__ import annotations

import time
from pathlib import Path

import click

from moeplace.commands.options import model_option
from moeplace.console import Console
from moeplace.errors import InputError
from moeplace.fileio import atomic_dir, write_bytes, write_text
from moeplace.traces.read import READERS, ReadOptions, build_stats

_KEEP_HELP = "token paths kept as the sample for the node-dedup objective: a number or 'all'"


def parse_layers(spec: str | None) -> tuple[int, ...] | None:
    """'2-9' or '0,3,5-7' -> layer numbers."""
    if not spec:
        return None
    out: list[int] = []
    try:
        for part in spec.split(","):
            lo, sep, hi = part.strip().partition("-")
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise InputError(f"expected layer numbers like 2-9 or 0,3,5-7, got {spec!r}", field="--layers") from None
    if len(set(out)) != len(out):
        raise InputError(f"names a layer twice: {spec!r}", field="--layers")
    return tuple(sorted(out))


def parse_keep(value: str) -> int | None:
    if value.strip().lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise InputError(f"expected a number or 'all', got {value!r}", field="--keep-paths") from None
    if n < 0:
        raise InputError(f"must be >= 0, got {n}", field="--keep-paths")
    return n


def read_options(model_ref, num_experts, top_k, layers, keep_paths="65536", jobs=None, chunk_mb=16, window_mb=256,
                 progress=None) -> tuple[ReadOptions, object]:
    model = None
    if model_ref:
        from moeplace.placement.presets import load_model

        model = load_model(model_ref)
    return ReadOptions(num_experts=num_experts or (model.num_experts if model else None),
                       top_k=top_k or (model.top_k if model else None), layer_numbers=parse_layers(layers),
                       keep_paths=parse_keep(keep_paths), jobs=jobs, chunk_bytes=int(chunk_mb * (1 << 20)),
                       window_bytes=int(window_mb * (1 << 20)), progress=progress), model


def _reading(fn):
    for deco in reversed((
        click.option("--format", "fmt", type=click.Choice(sorted(READERS)), default=None,
                     help="input format [default: from the file name and contents]"),
        click.option("--model", "model_ref", metavar="PRESET|FILE", default=None,
                     help="model preset or .json/.toml: gives the expert count and top-k, and checks the shape"),
        click.option("--num-experts", type=click.IntRange(2, 4_096), default=None,
                     help="experts per MoE layer [default: the file's or the model's]"),
        click.option("--top-k", type=click.IntRange(min=1), default=None,
                     help="top-k, for count-only inputs [default: the file's or the model's]"),
        click.option("--layers", default=None, metavar="SPEC",
                     help="layer numbers of a JSON-lines trace, e.g. 2-9 [default: those of its first chunk]"),
    )):
        fn = deco(fn)
    return fn


def load_any(paths: tuple[str, ...], fmt, model_ref, num_experts, top_k, layers, console: Console | None = None,
             **kw):
    """Statistics from trace/statistics files, with a progress bar on the console when given."""
    if console is None:
        opts, model = read_options(model_ref, num_experts, top_k, layers, **kw)
        stats = build_stats(list(paths), opts, fmt)
    else:
        with console.progress("reading") as bar:
            task = bar.add_task("reading", total=None, info="")

            def progress(done: int, total: int) -> None:
                bar.update(task, total=total, completed=done, info=f"{done / max(total, 1):.0%}")

            opts, model = read_options(model_ref, num_experts, top_k, layers, progress=progress, **kw)
            stats = build_stats(list(paths), opts, fmt)
    if model is not None:
        stats.check_model(model.num_moe_layers, model.num_experts, model.top_k, ", ".join(paths))
    return stats


@click.group()
def stats() -> None:
    """Routing statistics: build them from traces, show, compare, profile and synthesize them.

    \b
    Examples:
      moeplace stats build trace.jsonl --num-experts 64 -o stats.npz
      moeplace stats show stats.npz --plots plots/
      moeplace stats diff yesterday.npz today.npz
      moeplace stats synth --like flame-moe-290m --model seed -o seed-like.npz
    """


@stats.command()
@click.argument("traces", nargs=-1, required=True, metavar="TRACE...")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="statistics .npz to write")
@_reading
@click.option("--keep-paths", default="65536", show_default=True, metavar="N|all", help=_KEEP_HELP)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="worker processes [default: the cores]")
@click.option("--chunk-mb", type=click.FloatRange(min=0.01), default=16, show_default=True,
              help="JSON lines: bytes per chunk, MiB")
@click.option("--window-mb", type=click.FloatRange(min=0), default=256, show_default=True,
              help="JSON lines: a token's records must lie within this many MiB of each other")
@click.option("--force", is_flag=True, help="replace an existing output file")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("-q", "--quiet", is_flag=True, help="print nothing but errors")
def build(traces, out, fmt, model_ref, num_experts, top_k, layers, keep_paths, jobs, chunk_mb, window_mb, force,
          as_json, quiet) -> None:
    """Aggregate TRACE files (each its own tokens) into one statistics file.

    Formats: JSON lines, .npy/.npz `topk`, SGLang .pt dumps, TensorRT-LLM statistics directories or
    .safetensors, count matrices as CSV, routing-analysis counts .npz, moeplace statistics (merged).
    """
    if Path(out).exists() and not force:
        raise InputError("exists (use --force to replace it)", source=out)
    console = Console(quiet=quiet or as_json)
    t0 = time.perf_counter()
    s = load_any(traces, fmt, model_ref, num_experts, top_k, layers, console, keep_paths=keep_paths, jobs=jobs,
                 chunk_mb=chunk_mb, window_mb=window_mb)
    wall = time.perf_counter() - t0
    s.save(out)
    from moeplace.traces.report import build_summary

    summary = build_summary(s, out, wall)
    if as_json:
        Console().json(summary)
        return
    for line in summary["lines"]:
        console.line(line)


@stats.command()
@click.argument("source", metavar="STATS")
@_reading
@click.option("--plots", "plots_dir", default=None, type=click.Path(file_okay=False),
              help="write load.png, coact.png and trans.png (heatmaps) into this directory")
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False),
              help="write the counts as CSV (the long layout `stats build` reads)")
@click.option("--force", is_flag=True, help="replace existing plot directory / CSV file")
@click.option("--json", "as_json", is_flag=True, help="print the measures as JSON")
def show(source, fmt, model_ref, num_experts, top_k, layers, plots_dir, csv_out, force, as_json) -> None:
    """Per-layer load skew, co-activation and affinity of STATS (statistics, or any trace).

    \b
    Examples:
      moeplace stats show stats.npz
      moeplace stats show trace.npz --plots plots/ --json
    """
    from moeplace.traces.measures import measure
    from moeplace.traces.report import show_lines, show_rows, summary_lines

    s = load_any((source,), fmt, model_ref, num_experts, top_k, layers)
    m = measure(s)
    if csv_out:
        if Path(csv_out).exists() and not force:
            raise InputError("exists (use --force to replace it)", source=csv_out)
        from moeplace.traces.csvcounts import to_csv

        write_text(csv_out, to_csv(s))
    written, notes = [], []
    if plots_dir:
        from moeplace.traces.plots import coact_png, drawn, load_png, trans_png

        title = Path(source).name
        with atomic_dir(plots_dir, force=force) as tmp:
            for name, fn in (("load.png", load_png), ("coact.png", coact_png), ("trans.png", trans_png)):
                png = fn(s, title)
                if png is not None:
                    write_bytes(tmp / name, png)
                    written.append(str(Path(plots_dir) / name))
                    notes.append(drawn(name, s))
    console = Console()
    if as_json:
        console.json({"source": source, "num_tokens": s.num_tokens, "layers": list(s.layer_numbers),
                      "num_experts": s.num_experts, "top_k": s.top_k, "measured": list(s.measured),
                      "dropped_records": s.dropped_records, "trans_dropped": s.trans_dropped_L1.tolist(),
                      "measures": m.as_dict(), "plots": written})
        return
    for line in show_lines(s, m, source):
        console.line(line)
    header, rows = show_rows(s, m)
    console.table(None, header, rows, right=tuple(range(1, len(header))))
    for line in summary_lines(m):
        console.line(line)
    for path, note in zip(written, notes):
        console.line(f"wrote {path} ({note})")
    if csv_out:
        console.line(f"wrote {csv_out}")


@stats.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@_reading
@click.option("--json", "as_json", is_flag=True, help="print the distances as JSON")
def diff(a, b, fmt, model_ref, num_experts, top_k, layers, as_json) -> None:
    """How far workload B is from workload A: per-layer distances of loads and transitions.

    Distances are total variation (the share of choices or pairs that differ), beside the distance two
    samples of one workload of these sizes would show by chance.
    """
    from moeplace.traces.diff import diff_stats
    from moeplace.traces.report import diff_lines

    sa = load_any((a,), fmt, model_ref, num_experts, top_k, layers)
    sb = load_any((b,), fmt, model_ref, num_experts, top_k, layers)
    d = diff_stats(sa, sb)
    console = Console()
    if as_json:
        console.json({"a": a, "b": b, **d.as_dict()})
        return
    header, rows, lines = diff_lines(d, a, b)
    if rows:
        console.table(None, header, rows, right=tuple(range(1, len(header))))
    for line in lines:
        console.line(line)


@stats.command()
@click.option("--like", "like", required=True, metavar="PRESET|PROFILE|STATS",
              help="a profile preset (see `moeplace stats presets`), a .profile.json, or statistics/trace to fit")
@model_option
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="statistics .npz to write")
@click.option("--tokens", "num_tokens", type=click.IntRange(min=64), default=8192, show_default=True,
              help="synthetic tokens")
@click.option("--seed", default=0, show_default=True, type=int, help="generator seed")
@click.option("--force", is_flag=True, help="replace an existing output file")
@click.option("--json", "as_json", is_flag=True, help="print the fit as JSON")
def synth(like, model_ref, out, num_tokens, seed, force, as_json) -> None:
    """Synthesize statistics for MODEL whose skew, co-activation and affinity profiles fit a real workload's.

    \b
    Examples:
      moeplace stats synth --like flame-moe-290m --model seed -o seed-like-flame.npz
      moeplace stats synth --like trace.npz --model deepseek-v3 -o ds.npz --tokens 16384
    """
    from moeplace.placement.presets import load_model
    from moeplace.traces.fit import fit_synthesize
    from moeplace.traces.measures import measure
    from moeplace.traces.report import synth_lines

    if Path(out).exists() and not force:
        raise InputError("exists (use --force to replace it)", source=out)
    profile = resolve_profile(like)
    model = load_model(model_ref)
    console = Console(quiet=as_json)
    with console.progress("fitting") as bar:
        bar.add_task("fitting", total=None, info=f"{profile.name} -> {model.name}")
        s, report = fit_synthesize(profile, model.num_moe_layers, model.num_experts, model.top_k,
                                   num_tokens=num_tokens, seed=seed, layer_numbers=model.moe_layer_numbers)
    s.save(out)
    m = measure(s)
    if as_json:
        Console().json({"out": out, "like": profile.name, "model": model.name, "rounds": report.rounds,
                        "worst_relative_error": report.worst_relative_error, "knobs": report.knobs,
                        "source": profile.summary, "synthetic": m.summary()})
        return
    for line in synth_lines(profile, model.name, report, m, out):
        console.line(line)


@stats.command()
@click.argument("source", metavar="STATS")
@click.option("--name", required=True, help="the profile's name")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="profile .json to write")
@_reading
@click.option("--notes", default="", help="free text kept in the profile (provenance, caveats)")
@click.option("--force", is_flag=True, help="replace an existing output file")
def profile(source, name, out, fmt, model_ref, num_experts, top_k, layers, notes, force) -> None:
    """Write the measured profile of STATS as JSON (what `stats synth --like` fits; no token data)."""
    from moeplace.traces.profile import profile_json, profile_of

    if Path(out).exists() and not force:
        raise InputError("exists (use --force to replace it)", source=out)
    s = load_any((source,), fmt, model_ref, num_experts, top_k, layers)
    write_text(out, profile_json(profile_of(s, name, Path(source).name, notes)))
    Console().line(f"wrote {out}")


@stats.command()
@click.option("--json", "as_json", is_flag=True, help="print the presets as JSON")
def presets(as_json) -> None:
    """List the routing profiles fitted to real traces that ship with moeplace."""
    from moeplace.traces.profile import load_preset, preset_names

    profs = [load_preset(n) for n in preset_names()]
    if as_json:
        Console().json({p.name: p.model_dump(mode="json") for p in profs})
        return

    def f(x):
        return "n/a" if x is None else f"{x:.3f}"

    Console().table(None, ["preset", "layers x experts", "top-k", "tokens", "skew (load CV)", "coact lift",
                           "affinity lift"],
                    [(p.name, f"{p.num_layers} x {p.num_experts}", p.top_k, f"{p.num_tokens:,}",
                      f(p.summary.get("load_cv")), f(p.summary.get("coact_lift")), f(p.summary.get("affinity_lift")))
                     for p in profs], right=(2, 3, 4, 5, 6))


def resolve_profile(like: str):
    from moeplace.traces.profile import load_preset, preset_names, profile_of, read_profile

    p = Path(like)
    if p.exists():
        if p.name.endswith(".json"):
            return read_profile(p)
        return profile_of(build_stats([p]), p.stem, p.name)
    if like in preset_names():
        return load_preset(like)
    raise InputError(f"neither a file nor a profile preset (presets: {', '.join(preset_names()) or 'none'})",
                     field="--like", source=like)
