"""moeplace: place the experts of Mixture-of-Experts models on GPU clusters.

The planning library never prints and never imports rich or torch; the CLI (`moeplace.cli`) is a thin
layer over it and `moeplace.console` owns all terminal output.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy entry points, so that `import moeplace` stays light: `moeplace.rebalance` (EPLB's signature)."""
    if name == "rebalance":
        from moeplace.ep.rebalance import rebalance

        return rebalance
    raise AttributeError(f"module 'moeplace' has no attribute {name!r}")
