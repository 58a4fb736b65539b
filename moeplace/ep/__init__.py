"""Expert parallelism with redundant experts: EPLB's algorithm, `rebalance`, scoring, peers, engine files."""
