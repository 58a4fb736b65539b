"""`moeplace check`: verify an emitted directory against its plan; exit 1 on any mismatch."""

from __future__ import annotations

import click

from moeplace.console import Console
from moeplace.launch.check import check_dir


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="print only the problems")
@click.pass_context
def check(ctx: click.Context, directory: str, quiet: bool) -> None:
    """Check that DIR (from `moeplace emit` or `solve`) launches its plan.json exactly.

    Every GPU is used once and every expert placed; manifest.json, rankfile.tsv and hostfile are read back
    and compared with the plan; every other file is rendered again and compared line by line. Prints one
    line per problem on stderr and exits 1 if there is any.

    \b
    Examples:
      moeplace check launch/
    """
    result = check_dir(directory)
    console = Console()
    for p in result.problems:
        console.error(f"{directory}/{p}")
    if result.problems:
        console.error(f"{directory}: {len(result.problems)} problem{'s' if len(result.problems) != 1 else ''}")
        ctx.exit(1)
    if not quiet:
        console.line(f"{directory}: ok ({result.files_checked} files agree with plan.json: {result.world_size:,} "
                     f"ranks on {result.num_nodes:,} nodes)")
