"""The cost model: what a plan does on real hardware (time per layer, tokens/s, latency, memory, traffic)."""
