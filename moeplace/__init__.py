"""moeplace: place the experts of Mixture-of-Experts models on GPU clusters.

The planning library never prints and never imports rich or torch; the CLI (`moeplace.cli`) is a thin
layer over it and `moeplace.console` owns all terminal output.
"""

from moeplace.version import __version__

__all__ = ["__version__"]
