"""`moeplace solvers`: the registered solver backends."""

from __future__ import annotations

import click

from moeplace.console import Console
from moeplace.solvers import available_solvers


@click.command()
def solvers() -> None:
    """List the solver backends `moeplace solve --solver` accepts.

    \b
    Example:
      moeplace solvers
    """
    Console().table(None, ["solver", "what it does"], sorted(available_solvers().items()))
