"""The `moeplace` command: a thin layer over the library.

Each command lives in its own module under `moeplace/commands/` and is listed in COMMANDS below; options
shared between commands are defined once in `moeplace/commands/options.py`. A command's module is imported
only when it runs (`--help` reads the short help from the modules' source), so `moeplace stats build`
starts without the solvers. User errors (`InputError`) become one line on stderr and exit code 2, never a
traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from moeplace.errors import InputError
from moeplace.version import __version__

COMMANDS = (
    "moeplace.commands.solve:solve",
    "moeplace.commands.evaluate:evaluate",
    "moeplace.commands.presets:presets",
    "moeplace.commands.schema:schema",
    "moeplace.commands.solvers:solvers",
    "moeplace.commands.emit:emit",
    "moeplace.commands.check:check",
    "moeplace.commands.stats:stats",
    "moeplace.commands.topology:topology",
    "moeplace.commands.calibrate:calibrate",
    "moeplace.commands.validate:validate",
    "moeplace.commands.predict:predict",
    "moeplace.commands.compare:compare",
)


def _short_help(spec: str, limit: int) -> str:
    """A command's one-line help from its module's source (its docstring's first sentence), without importing."""
    import ast
    from importlib.util import find_spec

    module, name = spec.split(":")
    origin = find_spec(module).origin
    with open(origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return click.Command(name, help=ast.get_docstring(node) or "").get_short_help_str(limit)
    return ""


class LazyGroup(click.Group):
    """The commands of COMMANDS, each imported when it is called."""

    specs = {spec.split(":")[1]: spec for spec in COMMANDS}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.specs) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.specs:
            module, attr = self.specs[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)  # as click.Group does
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else _short_help(self.specs[name], limit)) for name in names]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="moeplace")
def cli() -> None:
    """Place the experts of Mixture-of-Experts models on GPU clusters.

    \b
    Start here:
      moeplace solve --topology fat-tree --out plan/
      moeplace evaluate plan/plan.json
      moeplace presets
    """


def main(argv: list[str] | None = None) -> None:
    from moeplace.console import Console

    try:
        rv = cli.main(args=argv, prog_name="moeplace", standalone_mode=False)
    except InputError as exc:
        Console(stderr=True).error(str(exc))
        sys.exit(2)
    except click.exceptions.Abort:  # click's name for a KeyboardInterrupt (from SIGINT or, in a solve, SIGTERM)
        from moeplace import interrupts

        code = interrupts.exit_code() or 130
        Console(stderr=True).error("terminated (SIGTERM)" if code == 143 else "aborted")
        sys.exit(code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from moeplace import interrupts

        code = interrupts.exit_code() or 130
        Console(stderr=True).error("terminated (SIGTERM)" if code == 143 else "interrupted")
        sys.exit(code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
