"""Every launch artifact of a plan, rendered in memory and written in one place.

`render_launch(plan, options)` is pure: the same plan and options give the same bytes. `write_launch`
writes the files into a directory (the caller's `atomic_dir`, so a failure leaves nothing half-written)
with scripts executable. `artifacts.json` records the options and the file list, so that `moeplace check`
can render the directory again and compare.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from moeplace.fileio import dumps_json, write_text
from moeplace.launch import engines, hostfiles, slurm, torchrun
from moeplace.launch.layout import plan_layout
from moeplace.launch.manifest_writer import build_manifest, manifest_text
from moeplace.launch.options import EmitOptions
from moeplace.placement.plan import Plan, plan_json

INDEX = "artifacts.json"
INDEX_FORMAT = "moeplace.launch"
EXECUTABLE = frozenset({"job.sbatch", slurm.WRAPPER, "torchrun.sh"})


@dataclass(frozen=True)
class LaunchFiles:
    files: dict[str, str]
    engines: dict[str, str | None]
    warnings: tuple[str, ...]
    placeholder_hosts: bool = False

    @property
    def plan_sha256(self) -> str:
        return sha256_text(self.files["plan.json"])


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_launch(plan: Plan, options: EmitOptions | None = None) -> LaunchFiles:
    """All artifacts as {relative path: text}; `engines` maps each engine to None (written) or the reason not."""
    options = options or EmitOptions()
    plan_text = plan_json(plan)
    sha = sha256_text(plan_text)
    layout = plan_layout(plan)
    manifest, warnings = build_manifest(layout, sha, options)
    if layout.placeholder_hosts:
        warnings = [slurm.placeholder_message(layout)] + list(warnings)
    files = {
        "plan.json": plan_text,
        "manifest.json": manifest_text(manifest),
        "rankfile.tsv": hostfiles.rankfile_tsv(layout, sha),
        "hostfile": hostfiles.slurm_hostfile(layout),
        "hostfile.deepspeed": hostfiles.deepspeed_hostfile(layout),
        "hostfile.mpich": hostfiles.mpich_hostfile(layout),
        "rankfile.openmpi": hostfiles.openmpi_rankfile(layout, options),
        "job.sbatch": slurm.sbatch_script(layout, sha, options),
        slurm.WRAPPER: slurm.rank_wrapper(layout, sha, options),
        "torchrun.sh": torchrun.torchrun_script(layout, sha, options),
    }
    ep = engines.ep_layout(layout)
    reason = ep if isinstance(ep, str) else None
    if reason is None:
        files.update(engines.engine_files(layout, ep))
    files["engines/README.md"] = engines.engines_readme(layout, ep, sha, options.master_port)
    status = {name: reason for name in engines.ENGINE_FILES}
    index = {
        "format": INDEX_FORMAT,
        "format_version": 1,
        "plan_sha256": sha,
        "options": options.model_dump(mode="json"),
        "files": sorted(files),
        "engines": {name: {"file": None if why else engines.ENGINE_FILES[name][0], "not_written": why}
                    for name, why in status.items()},
        "warnings": list(warnings),
    }
    files[INDEX] = dumps_json(index)
    return LaunchFiles(files=files, engines=status, warnings=tuple(warnings),
                       placeholder_hosts=layout.placeholder_hosts)


def write_launch(out_dir: str | Path, launch: LaunchFiles) -> list[Path]:
    """Write every file under `out_dir` (atomically each); scripts get mode 0755, the rest 0644."""
    out = Path(out_dir)
    os.chmod(out, 0o755)
    written = []
    for rel, text in launch.files.items():
        path = out / rel
        write_text(path, text)
        os.chmod(path, 0o755 if rel in EXECUTABLE else 0o644)
        written.append(path)
    for sub in {p.parent for p in written if p.parent != out}:
        os.chmod(sub, 0o755)
    return written
