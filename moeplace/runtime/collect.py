"""After the timed steps: rank 0's reference check and its summary of every rank's timings (measured.json)."""

from __future__ import annotations

import datetime
import platform

import numpy as np

from moeplace.runmodel.measured import Check, LayerTime, Measured, RankTime, spread
from moeplace.runtime.deps import import_torch
from moeplace.runtime.experts import load_expert, seeded_expert

torch = import_torch()


def reference_check(manifest, cfg, comm, T, dtype_name, routing, x0) -> Check:
    from moeplace.runtime.reference import reference_forward, relative_error

    model, H = manifest.model, manifest.model.hidden
    out = np.full((T, H), np.nan, dtype=np.float32)
    for r in range(manifest.world_size):
        comm.store.wait([f"out/{r}/n"])
        for m in range(int(comm.store.get(f"out/{r}/n"))):
            raw = comm.store.get(f"out/{r}/{m}")
            n = len(raw) // (8 + 4 * H)
            tok = np.frombuffer(raw[:8 * n], dtype=np.int64)
            out[tok] = np.frombuffer(raw[8 * n:], dtype=np.float32).reshape(n, H)
    experts = {}
    for ml in range(model.num_moe_layers):
        for e in range(model.num_experts):
            experts[(ml, e)] = (load_expert(cfg.weights, model, ml, e, dtype=torch.float64, device="cpu") if cfg.weights
                                else seeded_expert(model, ml, e, seed=manifest.routing.seed, dtype=torch.float64,
                                                   device="cpu"))
    ref = reference_forward(x0.cpu(), routing.paths_TLK, routing.gates_TLK, experts)
    err = relative_error(torch.from_numpy(out), ref)
    tol = 1e-5 if dtype_name == "fp32" else 1e-2
    return Check(rel_err=float(f"{err:.4g}"), tolerance=tol, passed=bool(err <= tol))


def summarize(manifest, cfg, results, dname, backend, dtype_name, M, T, variants, check) -> Measured:
    model, world = manifest.model, manifest.world_size
    ranks = sorted(results)
    layer = np.array([results[r]["layer_us"] for r in ranks], dtype=np.float64)  # [ranks, steps, L]
    step = np.array([results[r]["step_us"] for r in ranks], dtype=np.float64)  # [ranks, steps]
    slow_layer = layer.max(axis=0)
    slow_step = step.max(axis=0)
    pairs: dict[tuple[int, int], float] = {}
    for r in ranks:
        src = results[r]["node"]
        for dst, nbytes in results[r]["bytes_to_node"].items():
            pairs[(src, int(dst))] = pairs.get((src, int(dst)), 0.0) + nbytes
    nvlink = sum(v for (a, b), v in pairs.items() if a == b)
    network = sum(v for (a, b), v in pairs.items() if a != b)
    layers = [LayerTime(moe_layer=l, layer=model.moe_layer_numbers[l], us=spread(slow_layer[:, l]), tokens_in=T)
              for l in range(model.num_moe_layers)]
    software = {"torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available() and backend == "nccl":
        software["cuda"] = str(torch.version.cuda)
        software["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
    med = float(np.median(slow_step))
    return Measured(
        manifest_sha256=cfg.manifest_sha256, plan_sha256=manifest.plan_sha256,
        model={"name": model.name, "hidden": model.hidden, "expert_hidden": model.expert_hidden,
               "activation": model.activation, "num_experts": model.num_experts, "top_k": model.top_k,
               "num_moe_layers": model.num_moe_layers},
        flow=manifest.flow, world_size=world, num_nodes=len(manifest.hosts), gpus_per_node=manifest.gpus_per_node,
        device=dname, backend=backend, engine=results[0]["engine"], transport=results[0]["transport"], dtype=dtype_name,
        cuda_graphs=cfg.graphs and backend == "nccl", micro_batches=M, tokens_per_step=T, tokens_per_gpu=T / world,
        routing_steps=variants, warmup_steps=cfg.warmup, steps=cfg.steps,
        capacity_tokens_per_peer=manifest.buffers.capacity_tokens_per_peer,
        capacity_rows_per_peer=results[0].get("capacity_rows_per_peer"),
        expert_rows_per_microbatch=max((results[r].get("expert_rows") or 0.0) for r in ranks) or None,
        overflow_rows_per_step=round(sum(results[r]["overflow"] for r in ranks), 3),
        layers=layers, step_us=spread(slow_step), tokens_per_s=round(T / (med * 1e-6), 1),
        bytes_per_step={"nvlink": round(nvlink, 1), "network": round(network, 1)},
        dedup="node" if manifest.dedup and results[0]["engine"] == "generic" else "gpu",
        node_pairs=[(a, b, round(v, 1)) for (a, b), v in sorted(pairs.items())], check=check, software=software,
        measured_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        ranks=[RankTime(rank=r, host=results[r]["host"], local_gpu=results[r]["local_gpu"],
                        step_us_median=round(float(np.median(step[i])), 3)) for i, r in enumerate(ranks)])
