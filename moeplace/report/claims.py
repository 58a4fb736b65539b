"""The seed's four claims, each tested on the cost model's numbers, per hardware world.

Every claim is judged on the seed design at equal GPU count at two points, each at its capacity (the
largest batch that fits memory): decode at the report's context, and prefill of prompts of that length.
A claim holds only if it holds at both.

    all experts compute at once   the share of GPU time spent computing (load skew: the hottest expert
                                  sets each stage's pace; pipeline fill: stages wait on each other) >= 0.8
    near-linear scaling           tokens/s of the 1,856-GPU instance over tokens/s of independent replicas
                                  of the best fitting baseline (perfect linear scaling of a small instance)
                                  on the same GPUs, each at its capacity, >= 0.9
    communication hidden          transfers never bound throughput (busiest NIC, NVLink or link <= compute
                                  per tick) and are <= 10% of one token's pass, which no overlap can hide
    60% MFU                       model FLOPs utilization >= 0.6
"""

from __future__ import annotations

BUSY_MIN = 0.8
SCALING_MIN = 0.9
EXPOSED_MAX = 0.10
MFU_TARGET = 0.6


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def evaluate_claims(r, ds) -> list[dict]:
    """One dict per (world, claim): claim, world, holds (in both regimes), regimes ({"decode": bool,
    "prefill": bool}; None: nothing to compare against), number (a sentence with the figures)."""
    seed = next((d for d in ds if d.experts_per_gpu == 1), None)
    if seed is None:
        return []
    baselines = [d for d in ds if d.experts_per_gpu > 1]
    out = []
    for world in r.worlds:
        cap = r.capacity(world, seed, "equal-gpus")
        dec_w = cap.workload
        pre = r.capacity(world, seed, "equal-gpus", "prefill")
        points = (("decode", cap), ("prefill", pre))
        busy = {k: p.busy_fraction for k, p in points}
        bal = {k: p.timing.expert_balance for k, p in points}
        out.append({
            "world": world.key, "claim": "all experts of a layer compute at once",
            "holds": all(v >= BUSY_MIN for v in busy.values()),
            "regimes": {k: bool(v >= BUSY_MIN) for k, v in busy.items()},
            "number": f"GPUs compute {_pct(busy['decode'])} of the time in decode (batch {dec_w.batch}) and "
                      f"{_pct(busy['prefill'])} in prefill (batch {pre.workload.batch}); a stage's experts "
                      f"average {_pct(bal['decode'])} / {_pct(bal['prefill'])} of its hottest expert's time "
                      f"(threshold {_pct(BUSY_MIN)}); the slowest GPU: {cap.timing.hottest}"})
        ratios, refs = {}, {}
        for k, p in points:
            best = None
            for d in baselines:
                b = r.capacity(world, d, "equal-gpus", k)
                if b.memory.fits and (best is None or b.tokens_per_s > best.tokens_per_s):
                    best = b
            if best is not None:
                ratios[k], refs[k] = p.tokens_per_s / best.tokens_per_s, best.deployment
        if ratios:
            out.append({
                "world": world.key, "claim": "near-linear scaling",
                "holds": all(v >= SCALING_MIN for v in ratios.values()) and len(ratios) == 2,
                "regimes": {k: bool(ratios[k] >= SCALING_MIN) if k in ratios else None for k, _ in points},
                "number": "; ".join(f"{k}: {ratios[k]:.2f}x the tokens/s of independent replicas of {refs[k]}"
                                    for k in ratios) + f" on the same GPUs, each at its capacity "
                                                       f"(threshold {SCALING_MIN:.2f})"})
        else:
            out.append({"world": world.key, "claim": "near-linear scaling", "holds": False,
                        "regimes": {"decode": None, "prefill": None},
                        "number": "no baseline fits memory to compare against"})
        comm_ratio = {k: max(p.timing.terms.get(t, 0.0) for t in ("network", "nvlink", "links"))
                      / max(p.timing.terms["compute"], 1e-12) for k, p in points}
        exposed = {k: p.comm_share_of_pass for k, p in points}
        out.append({
            "world": world.key, "claim": "communication hidden by compute",
            "holds": all(comm_ratio[k] <= 1.0 and exposed[k] <= EXPOSED_MAX for k in busy),
            "regimes": {k: bool(comm_ratio[k] <= 1.0 and exposed[k] <= EXPOSED_MAX) for k in busy},
            "number": "; ".join(f"{k}: busiest transfer resource at {_pct(comm_ratio[k])} of compute per tick, "
                                f"transfers {_pct(exposed[k])} of a token's pass" for k in busy)
                      + f" (thresholds 100% and {_pct(EXPOSED_MAX)})"})
        mfu = {k: p.mfu for k, p in points}
        out.append({
            "world": world.key, "claim": "60% MFU", "holds": all(v >= MFU_TARGET for v in mfu.values()),
            "regimes": {k: bool(v >= MFU_TARGET) for k, v in mfu.items()},
            "number": f"MFU {_pct(mfu['decode'])} in decode, {_pct(mfu['prefill'])} in prefill "
                      f"(of {cap.gpus:,} GPUs x the nominal peak)"})
    return out
