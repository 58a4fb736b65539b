"""moeplace: place the experts of Mixture-of-Experts models on GPU clusters.

    import moeplace
    plan = moeplace.solve(model="examples/tiny.toml", nodes=4, time_limit_s=30)
    plan.objective, plan.bound, plan.gap    # floats, as plan.json records them
    plan.save("plan/")                      # what `moeplace solve --out plan/` writes
    moeplace.evaluate(plan, trace="held_out.npz")   # what `moeplace evaluate --json` prints

`solve`, `load_plan`, `evaluate` and `Plan` live in `moeplace.api` and are imported on first use, so that
`import moeplace` stays cheap. The planning library never prints and never imports rich or torch; the CLI
(`moeplace.cli`) is a thin layer over it and `moeplace.console` owns all terminal output.
"""

from moeplace.version import __version__

__all__ = ["__version__", "Plan", "solve", "load_plan", "evaluate", "rebalance"]
_API = ("Plan", "solve", "load_plan", "evaluate")


def __getattr__(name: str):
    if name in _API:
        from moeplace import api

        return getattr(api, name)
    if name == "rebalance":  # EPLB's signature (docs/engines.md)
        from moeplace.ep.rebalance import rebalance

        return rebalance
    raise AttributeError(f"module 'moeplace' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | {"rebalance"})
