"""`moeplace emit` as a library call: a plan file in, a directory of launch artifacts out."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from moeplace.errors import InputError
from moeplace.fileio import atomic_dir
from moeplace.fileio import file_digest
from moeplace.launch.layout import with_hosts
from moeplace.launch.options import EmitOptions
from moeplace.launch.render import LaunchFiles, render_launch, write_launch
from moeplace.placement.plan import Plan, load_plan


@dataclass(frozen=True, eq=False)
class EmitResult:
    out: Path
    plan: Plan
    launch: LaunchFiles


def emit_options(**values) -> EmitOptions:
    """EmitOptions from CLI values (None means the default); a bad value is an InputError naming the option."""
    try:
        return EmitOptions(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "options"
        raise InputError(f"{err['msg']} (got {err.get('input')!r})", field=name) from None


def trace_reference(plan: Plan, trace: str, out_dir: str | Path) -> str:
    """The name the trace gets inside the output directory, after checking it is the plan's trace.

    A manifest names only files inside its own folder (the runtime opens nothing else because of a name in
    it), so `emit` puts the trace there: a hard link where the file system allows one, a copy otherwise."""
    p = Path(trace)
    if not p.is_file():
        raise InputError("file not found", source=str(p), field="--trace")
    want = plan.stats.provenance.get("sha256")
    if want and file_digest(str(p)) != want:
        raise InputError(f"sha256 differs from the plan's statistics ({str(want)[:12]}...): not the trace the plan "
                         "was made from", source=str(p), field="--trace")
    return trace_name(p)


def trace_name(p: Path) -> str:
    from moeplace.launch.manifest import trace_file_problem

    problem = trace_file_problem(p.name)
    if problem:
        raise InputError(problem, source=str(p), field="--trace")
    return p.name


def place_trace(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def emit_launch(plan_path: str | Path, out_dir: str | Path, *, hosts: str | None = None, trace: str | None = None,
                force: bool = False, **options) -> EmitResult:
    path = Path(plan_path)
    if path.is_dir():
        path = path / "plan.json"
    plan = load_plan(path)
    if hosts:
        plan = with_hosts(plan, hosts)
    if trace:
        options["trace_file"] = trace_reference(plan, trace, out_dir)
    launch = render_launch(plan, emit_options(**options))
    if trace and (options["trace_file"] in launch.files or options["trace_file"] in ("run.json", "runs")):
        raise InputError(f"a trace named {options['trace_file']!r} would replace a launch file; rename it",
                         source=str(trace), field="--trace")
    with atomic_dir(out_dir, force=force) as tmp:
        write_launch(tmp, launch)
        if trace:
            place_trace(Path(trace), tmp / options["trace_file"])
    return EmitResult(out=Path(out_dir), plan=plan, launch=launch)
