"""What may reach a generated script: host names by full match, free text in `#` comments escaped.

Every string from an input (model and cluster names, hosts, Slurm words) reaches `job.sbatch`,
`torchrun.sh` and `moeplace-rank.sh` only through these checks. Patterns use `re.fullmatch`: a `$` anchor
also matches before a final newline, so `"gpu001\\n"` would pass it.
"""

from __future__ import annotations

from moeplace.topologies.hostlist import HOST_RE, host_problem  # noqa: F401 (re-exported for launch)


def comment_text(text: str) -> str:
    """`text` safe inside a `#` line: control characters (newline, CR, NUL, ...) escaped as `\\xNN`."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
