"""Verify an emitted directory: the plan is sound and every file says what the plan says.

The plan itself must use every GPU once and place every expert (`plan_problems`). Then `manifest.json`,
`rankfile.tsv` and `hostfile` are read back and compared with the plan field by field, so that a hand edit
is reported in the plan's terms ("rankfile.tsv line 7: rank 5 has expert 3, plan.json puts expert 12 there");
every other file is rendered again from `plan.json` and the options in `artifacts.json` and compared line by
line. Files that agree with the plan agree with each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from moeplace.errors import InputError
from moeplace.launch.hostfiles import RANKFILE_COLUMNS
from moeplace.launch.layout import Layout, plan_layout, plan_problems
from moeplace.launch.manifest import Manifest
from moeplace.launch.options import EmitOptions
from moeplace.launch.render import EXECUTABLE, INDEX, INDEX_FORMAT, render_launch, sha256_text
from moeplace.placement.plan import load_plan

MAX_PER_FILE = 10
_FROM_OPTIONS = ("master_port", "buffers", "routing")
ALSO_WRITTEN = frozenset({"run.json", "migration.json"})  # solve writes them beside the launch files
OUTPUTS = "runs"  # the workers' output directory


@dataclass(frozen=True)
class CheckResult:
    directory: Path
    problems: tuple[str, ...]
    files_checked: int
    world_size: int = 0
    num_nodes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dir(directory: str | Path) -> CheckResult:
    d = Path(directory)
    if not d.is_dir():
        raise InputError("not a directory (expected the output of moeplace emit or solve)", source=str(d))
    problems: list[str] = []
    options = _read_options(d, problems)
    try:
        plan = load_plan(d / "plan.json")
    except InputError as exc:
        return CheckResult(d, tuple(problems + [str(exc)]), 0)
    sound = plan_problems(plan)
    if sound:
        return CheckResult(d, tuple(problems + [f"plan.json: {p}" for p in sound]), 1)
    layout = plan_layout(plan)
    expected = render_launch(plan, options).files
    plan_sha = sha256_text((d / "plan.json").read_text(encoding="utf-8"))
    checkers = {"manifest.json": lambda t: _check_manifest(t, layout, expected["manifest.json"], plan_sha),
                "rankfile.tsv": lambda t: _check_rankfile(t, layout),
                "hostfile": lambda t: _check_hostfile(t, layout)}
    index_reported = bool(problems)
    for rel, want in expected.items():
        path = d / rel
        if rel == INDEX and index_reported:
            continue
        if path.is_symlink():
            problems.append(f"{rel}: is a symbolic link (to {path.readlink()}); emit writes plain files")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        problems += [f"{rel}: {p}" for p in _mode_problems(path, rel in EXECUTABLE)]
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{rel}: unreadable ({exc})")
            continue
        crlf = text.find("\r")
        if crlf >= 0:
            problems.append(f"{rel}: line {text.count(chr(10), 0, crlf) + 1} ends in CR (Windows line endings: "
                            "convert with dos2unix or emit again)")
            continue
        found = list(checkers[rel](text)) if rel in checkers else []
        if not found and text != want:
            found = [_first_difference(want, text)]
        problems += [f"{rel}: {p}" for p in found[:MAX_PER_FILE]]
        if len(found) > MAX_PER_FILE:
            problems.append(f"{rel}: ... and {len(found) - MAX_PER_FILE} more")
    from moeplace.launch.engines import ENGINE_FILES

    engine_names = {f for files in ENGINE_FILES.values() for f in files}
    for name in sorted(engine_names):
        if name not in expected and (d / name).exists():
            problems.append(f"{name}: present, but the plan has no layout the engines run (see engines/README.md)")
    problems += [f"{rel}: {p}" for rel, p in _directory_problems(d, set(expected) | engine_names | _trace(options))]
    return CheckResult(d, tuple(problems), len(expected), layout.world_size, layout.num_nodes)


def _mode_problems(path: Path, executable: bool) -> Iterator[str]:
    mode = path.stat().st_mode & 0o7777
    if executable and mode & 0o111 != 0o111:
        yield f"not executable by everyone (mode {mode:04o}; emit writes 0755): chmod 755 {path.name}"
    if mode & 0o002:
        yield f"writable by every user (mode {mode:04o}): anyone could change what the job runs"


def _trace(options: EmitOptions) -> set[str]:
    """The trace `emit --trace` put beside the manifest (a name inside the folder, see launch/manifest.py)."""
    return {options.trace_file} if options.trace_file else set()


def _directory_problems(d: Path, known: set[str]) -> Iterator[tuple[str, str]]:
    """The directory writable by everyone, and files in it that emit did not write (runs/ excepted)."""
    mode = d.stat().st_mode & 0o7777
    if mode & 0o002 and not mode & 0o1000:
        yield ".", f"the directory is writable by every user (mode {mode:04o})"
    for path in sorted(d.rglob("*")):
        rel = path.relative_to(d).as_posix()
        if rel == OUTPUTS or rel.startswith(OUTPUTS + "/") or rel in known or rel in ALSO_WRITTEN:
            continue
        if path.is_dir() and not path.is_symlink() and any(k.startswith(rel + "/") for k in known):
            continue
        yield rel, "not written by moeplace emit (remove it, or emit into a clean directory)"


def _read_options(d: Path, problems: list[str]) -> EmitOptions:
    path = d / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != INDEX_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {INDEX_FORMAT!r}")
        return EmitOptions.model_validate(data.get("options", {}))
    except FileNotFoundError:
        problems.append(f"{INDEX}: missing (the options below are the defaults)")
    except (ValueError, ValidationError) as exc:
        problems.append(f"{INDEX}: {' '.join(str(exc).split())} (the options below are the defaults)")
    return EmitOptions()


def _first_difference(want: str, got: str) -> str:
    a, b = want.splitlines(), got.splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"line {i + 1} is {_short(y)!r}; plan.json gives {_short(x)!r}"
    if len(a) != len(b):
        return f"{len(b)} lines; plan.json gives {len(a)}"
    return "differs from what plan.json gives (line endings or final newline)"


def _short(s: str, n: int = 100) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _check_manifest(text: str, layout: Layout, want_text: str, plan_sha: str) -> Iterator[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        return
    try:
        Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        yield f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
        return
    if data.get("plan_sha256") != plan_sha:
        yield (f"plan_sha256 is {str(data.get('plan_sha256'))[:12]}..., plan.json has sha256 {plan_sha[:12]}...: "
               "the manifest was emitted from another plan")
    yield from _json_diff(json.loads(want_text), data, "", layout)


def _json_diff(want: Any, got: Any, path: str, layout: Layout) -> Iterator[str]:
    if path == "plan_sha256":
        return
    if isinstance(want, dict) and isinstance(got, dict):
        for key in want:
            sub = f"{path}.{key}" if path else key
            if key not in got:
                yield f"{sub}: missing"
            else:
                yield from _json_diff(want[key], got[key], sub, layout)
        for key in got:
            if key not in want:
                yield f"{path}.{key}: not in the plan's manifest" if path else f"{key}: not in the plan's manifest"
    elif isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            yield f"{path}: {len(got)} entries, plan.json gives {len(want)}"
        for i, (x, y) in enumerate(zip(want, got)):
            yield from _json_diff(x, y, f"{path}[{i}]", layout)
    elif want != got:
        where, source = "", "plan.json"
        if path.startswith("ranks["):
            r = layout.rows[int(path[6:path.index("]")])]
            where = f" (rank {r.rank} is GPU {r.local_gpu} of {r.host} in plan.json)"
        elif path.split(".")[0] in _FROM_OPTIONS:
            source = "plan.json with the options in artifacts.json"
        yield f"{path} is {got!r}, {source} gives {want!r}{where}"


def _check_rankfile(text: str, layout: Layout) -> Iterator[str]:
    rows = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line and not line.startswith("#")]
    if len(rows) != layout.world_size:
        yield f"{len(rows)} rank lines, plan.json has {layout.world_size} ranks"
    for (lineno, line), want in zip(rows, layout.rows):
        cols = line.split("\t")
        if len(cols) != len(RANKFILE_COLUMNS):
            yield f"line {lineno}: {len(cols)} tab-separated columns, expected {len(RANKFILE_COLUMNS)}"
            continue
        expect = [str(want.rank), want.host, str(want.local_gpu), str(want.node),
                  ",".join(str(s.layer) for s in want.slots) or "-", ",".join(str(s.expert) for s in want.slots) or "-",
                  ",".join(str(s.replica) for s in want.slots) or "-"]
        for name, got, exp in zip(RANKFILE_COLUMNS, cols, expect):
            if got != exp:
                what = ", ".join(f"expert {s.expert} of layer {s.layer}" for s in want.slots) or "no expert"
                yield (f"line {lineno}: {name} is {got}, plan.json gives {exp} (rank {want.rank}: GPU "
                       f"{want.local_gpu} of {want.host}, {what})")
                break


def _check_hostfile(text: str, layout: Layout) -> Iterator[str]:
    lines = text.splitlines()
    if len(lines) != layout.world_size:
        yield f"{len(lines)} lines, plan.json has {layout.world_size} ranks (line r must be the host of rank r)"
    for i, (got, want) in enumerate(zip(lines, layout.rows)):
        if got.strip() != want.host:
            yield f"line {i + 1} is {got!r}, but plan.json runs rank {want.rank} on {want.host}"
