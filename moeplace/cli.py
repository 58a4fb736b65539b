"""The `moeplace` command: a thin layer over the library.

Each command lives in its own module under `moeplace/commands/` and is listed in COMMANDS below; options
shared between commands are defined once in `moeplace/commands/options.py`. User errors (`InputError`)
become one line on stderr and exit code 2, never a traceback.
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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="moeplace")
def cli() -> None:
    """Place the experts of Mixture-of-Experts models on GPU clusters.

    \b
    Start here:
      moeplace solve --topology fat-tree --out plan/
      moeplace evaluate plan/plan.json
      moeplace presets
    """


for _spec in COMMANDS:
    _module, _name = _spec.split(":")
    cli.add_command(getattr(importlib.import_module(_module), _name))


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
