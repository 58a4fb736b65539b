"""The CLI imports a command's module only when it runs (issue 16: `stats build` starts without the solvers)."""

from __future__ import annotations

import importlib
import subprocess
import sys

from click.testing import CliRunner

from moeplace.cli import COMMANDS, LazyGroup, _short_help, cli
from tests.conftest import REPO


def loaded_after(argv: list[str]) -> set[str]:
    code = ("import sys\nfrom moeplace.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('moeplace'))), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO)
    return set(r.stderr.split())


def test_help_and_stats_build_import_no_solver():
    for argv in (["--help"], ["stats", "build", "--help"]):
        loaded = loaded_after(argv)
        assert "moeplace.cli" in loaded
        assert not {"moeplace.planner", "moeplace.solvers", "moeplace.api", "moeplace.placement.builder"} & loaded


def test_every_command_is_listed_with_its_own_short_help():
    out = CliRunner().invoke(LazyGroup(cli.name, help=cli.help), ["--help"]).output
    for spec in COMMANDS:
        module, name = spec.split(":")
        cmd = getattr(importlib.import_module(module), name)
        assert cmd.name == name
        assert _short_help(spec, 60) == cmd.get_short_help_str(60)
        assert f"  {name} " in out
    assert sorted(cli.list_commands(None)) == sorted(s.split(":")[1] for s in COMMANDS)
