"""Routing traces: readers for the formats engines write, streaming aggregation into `RoutingStats`,
the measures `moeplace stats show` reports, and synthesis calibrated to a real trace.

Kept import-free so that `moeplace.placement.stats` can use the counting kernels without a cycle;
the front door is `moeplace.traces.read.read_stats`.
"""
