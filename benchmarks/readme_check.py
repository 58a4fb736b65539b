"""Run every shell line of README.md as written, in order, as a new user would after the install line.

    python benchmarks/readme_check.py                  # every line this machine can run
    python benchmarks/readme_check.py --only cheap     # what CI runs (tests/test_readme.py)
    python benchmarks/readme_check.py --list           # each line with its kind, nothing run

Each line runs in `bash -eo pipefail` in one fresh work directory (kept with --keep DIR) in which
`examples/` and `benchmarks/` point at the repository's, so outputs of earlier lines are there for later
ones. Kinds: `install` (the set-up line: its main job runs, the install itself does not), `tests` (the test
suite: not run from inside itself), `gpu` (needs CUDA GPUs and `moeplace[runtime]`), `slurm` (submits to a
Slurm cluster that has the plan's hosts), `slow` (minutes of CPU), `cheap` (everything else). Lines of kind
gpu run only where `nvidia-smi` finds a GPU; slurm only with --slurm. Prints each line's exit code, CPU
seconds (user + sys of the line's processes) and wall seconds; exit 1 if any line that ran failed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL = re.compile(r"^python3 -m venv .* pip install [^&]*&&\s*(?P<job>.+)$")
KINDS = (  # first match wins: (kind, pattern searched in the line)
    ("tests", re.compile(r"^python -m pytest\b")),
    ("slurm", re.compile(r"\bsbatch\b")),
    ("gpu", re.compile(r"^torchrun\b|moeplace calibrate\b|moeplace validate\b|runtime_bench\.py")),
    ("slow", re.compile(r"--work-limit 1e15|moeplace compare --sweep|solver_quality\.py|--strong-bound")),
)


@dataclass(frozen=True)
class Line:
    number: int      # line number in README.md (1-based)
    text: str        # as written
    kind: str
    command: str     # what runs (for `install`, the job after the install)


def readme_lines(path: Path = ROOT / "README.md") -> list[Line]:
    """Every non-blank, non-comment line of the README's ```bash blocks, classified."""
    out, in_block = [], False
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        s = raw.strip()
        if s.startswith("```"):
            in_block = (s == "```bash") if not in_block else False
            continue
        if not in_block or not s or s.startswith("#"):
            continue
        m = INSTALL.match(s)
        if m:
            out.append(Line(n, s, "install", m.group("job")))
            continue
        kind = next((k for k, rx in KINDS if rx.search(s)), "cheap")
        out.append(Line(n, s, kind, s))
    return out


def num_gpus() -> int:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return 0
    p = subprocess.run([exe, "-L"], capture_output=True, text=True)
    return sum(ln.startswith("GPU ") for ln in p.stdout.splitlines()) if p.returncode == 0 else 0


def gpus_needed(line: Line) -> int:
    m = re.search(r"--nproc-per-node[ =](\d+)", line.command)
    return int(m.group(1)) if m else 1


def prepare(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name in ("examples", "benchmarks"):
        link = work / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)


def run_line(line: Line, work: Path, env: dict[str, str]) -> tuple[int, float, float, str]:
    """(exit code, CPU s of the line's processes, wall s, last lines of its output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(["bash", "-eo", "pipefail", "-c", line.command], cwd=work, env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-8:])
    return p.returncode, cpu, wall, tail


def selected(lines: list[Line], only: str | None, slurm: bool, gpus: int) -> list[tuple[Line, str | None]]:
    """Each line with None (run it) or why it is skipped; a gpu line after a skipped gpu line is skipped too
    (it reads what that one writes)."""
    out, gpu_skipped = [], False
    for ln in lines:
        why = None
        if only and ln.kind not in (only, "install"):
            why = f"not {only}"
        elif ln.kind == "tests":
            why = "the test suite itself"
        elif ln.kind == "gpu" and gpus < gpus_needed(ln):
            why = f"needs {gpus_needed(ln)} CUDA GPU(s), {gpus} here"
            gpu_skipped = True
        elif ln.kind == "gpu" and gpu_skipped and "validate" in ln.command:
            why = "reads the measurement of a skipped line"
        elif ln.kind == "slurm" and not slurm:
            why = "needs a Slurm cluster with the plan's hosts (--slurm)"
        out.append((ln, why))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("cheap",), help="run only the cheap lines (and the install line's job), as CI does")
    ap.add_argument("--keep", type=Path, help="work directory to use and keep (default: a temporary one)")
    ap.add_argument("--slurm", action="store_true", help="also run the sbatch lines")
    ap.add_argument("--list", action="store_true", help="print each line with its kind and stop")
    args = ap.parse_args(argv)
    lines = readme_lines()
    if args.list:
        for ln in lines:
            print(f"{ln.number:4d} {ln.kind:7s} {ln.text}")
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="moeplace-readme-"))
    prepare(work)
    env = dict(os.environ)
    failed = 0
    print(f"README lines in {work}")
    for ln, why in selected(lines, args.only, args.slurm, num_gpus()):
        if why:
            print(f"  skip  {ln.number:4d} {ln.text}   ({why})")
            continue
        rc, cpu, wall, tail = run_line(ln, work, env)
        status = "ok  " if rc == 0 else f"FAIL {rc}"
        print(f"  {status} {ln.number:4d} {ln.text}   ({cpu:.1f} s CPU, {wall:.1f} s wall)", flush=True)
        if rc:
            failed += 1
            print("        " + tail.replace("\n", "\n        "))
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
