"""Routing traces: `RoutingStats` and its `.npz` format, readers for the formats engines write, streaming
aggregation, the measures `moeplace stats show` reports, and synthesis (plain and calibrated to a trace).

The front door is `moeplace.traces.read.read_stats`.
"""
