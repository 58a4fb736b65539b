"""Write a comparison: `report.md`, `report.html` and `comparison.json` into one directory, atomically."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from moeplace.fileio import atomic_dir, dumps_json, write_text
from moeplace.report.compare import Comparison
from moeplace.report.document import build
from moeplace.report.render import html, markdown

TITLE = "moeplace: expert per GPU against 4-8 experts per GPU"


def comparison_dict(c: Comparison) -> dict:
    d = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    d["config"] = c.config.as_dict()
    return {"format": "moeplace.comparison", "format_version": 1, **d}


def write_report(c: Comparison, out_dir: str | Path, *, force: bool = False) -> list[Path]:
    """The three files in `out_dir` (replaced whole with `force`); returns their paths."""
    blocks = build(c)
    md = markdown(blocks)
    page = html(blocks, TITLE)
    with atomic_dir(out_dir, force=force) as tmp:
        write_text(tmp / "report.md", md)
        write_text(tmp / "report.html", page)
        write_text(tmp / "comparison.json", dumps_json(comparison_dict(c)))
    return [Path(out_dir) / n for n in ("report.md", "report.html", "comparison.json")]
