"""Flow models, one module each, in one registry (`FLOWS`); a new flow is a module here that calls
`register_flow`, and one import line below."""

from moeplace.placement.flows.base import FLOWS, FlowModel, Transfer, build_traffic, get_flow, register_flow
from moeplace.placement.flows import chain, ep  # noqa: E402,F401  (register)

__all__ = ["FLOWS", "FlowModel", "Transfer", "build_traffic", "get_flow", "register_flow"]
