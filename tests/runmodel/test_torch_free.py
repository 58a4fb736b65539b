"""The model of a run stays torch-free: no module of `moeplace.runmodel` imports torch, and importing all of
them (with the fused step's cost model) leaves torch out of `sys.modules`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import moeplace.runmodel

PKG = Path(moeplace.runmodel.__file__).parent
REPO = PKG.parents[1]


def test_no_runmodel_module_imports_torch():
    found = []
    for path in sorted(PKG.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}:{node.lineno}" for n in names
                      if n.split(".")[0] in ("torch", "triton", "safetensors") or n.startswith("moeplace.runtime")]
    assert found == []


def test_importing_every_runmodel_module_leaves_torch_out():
    mods = sorted(f"moeplace.runmodel.{p.stem}" for p in PKG.glob("*.py") if p.stem != "__init__")
    assert "moeplace.runmodel.validation" in mods
    code = f"import sys, moeplace.costmodel.fusedstep, {', '.join(mods)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
