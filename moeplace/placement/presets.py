"""Named presets for models and clusters, in registries that refuse duplicates.

Model dimensions are the published ones (model cards / config.json); the cluster presets are the seed
document's numbers (`seed`) and the vendors' datasheets (`h100-sxm`, `h200`). Reports name the preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from moeplace.errors import InputError
from moeplace.fileio import load_mapping
from moeplace.placement.schema import ClusterSpec, FatTreeSpec, GpuSpec, ModelSpec

T = TypeVar("T", bound=BaseModel)

MODEL_PRESETS: dict[str, ModelSpec] = {}
CLUSTER_PRESETS: dict[str, ClusterSpec] = {}
GPU_PRESETS: dict[str, GpuSpec] = {}
PRESET_NOTES: dict[str, str] = {}


def _register(registry: dict[str, T], key: str, value: T, note: str) -> T:
    if key in registry:
        raise ValueError(f"preset {key!r} is already registered")
    registry[key] = value
    PRESET_NOTES[f"{type(value).__name__}:{key}"] = note
    return value


def register_model(key: str, spec: ModelSpec, note: str = "") -> ModelSpec:
    return _register(MODEL_PRESETS, key, spec, note)


def register_cluster(key: str, spec: ClusterSpec, note: str = "") -> ClusterSpec:
    return _register(CLUSTER_PRESETS, key, spec, note)


def register_gpu(key: str, spec: GpuSpec, note: str = "") -> GpuSpec:
    return _register(GPU_PRESETS, key, spec, note)


register_model(
    "seed",
    ModelSpec(name="seed", num_layers=61, dense_layers=(1, 2, 3), num_experts=32, top_k=2, hidden=7168,
              expert_hidden=2048, activation="swiglu", num_heads=128, head_dim=128, dtype="bf16"),
    "the seed document: 61 layers, 3 dense, 58 MoE x 32 experts, top-2",
)
register_model(
    "deepseek-v3",
    ModelSpec(name="deepseek-v3", num_layers=61, dense_layers=(1, 2, 3), num_experts=256, num_shared_experts=1,
              top_k=8, hidden=7168, expert_hidden=2048, activation="swiglu", num_heads=128, head_dim=128,
              dtype="bf16"),
    "DeepSeek-V3 config.json: 256 routed + 1 shared, top-8, MLA (head_dim = v_head_dim 128)",
)
register_model(
    "mixtral-8x7b",
    ModelSpec(name="mixtral-8x7b", num_layers=32, num_experts=8, top_k=2, hidden=4096, expert_hidden=14336,
              activation="swiglu", num_heads=32, head_dim=128, num_kv_heads=8, dtype="bf16"),
    "Mixtral-8x7B-v0.1 config.json",
)
register_model(
    "qwen3-30b-a3b",
    ModelSpec(name="qwen3-30b-a3b", num_layers=48, num_experts=128, top_k=8, hidden=2048, expert_hidden=768,
              activation="swiglu", num_heads=32, head_dim=128, num_kv_heads=4, dtype="bf16"),
    "Qwen3-30B-A3B config.json",
)

register_gpu(
    "seed",
    GpuSpec(name="H100 SXM5 (seed numbers)", memory_gb=64, bf16_tflops=400, hbm_tbps=1.8, nvlink_gbps=450),
    "the seed document's numbers, not the datasheet",
)
register_gpu(
    "h100-sxm",
    GpuSpec(name="H100 SXM5 (datasheet)", memory_gb=80, bf16_tflops=989, hbm_tbps=3.35, nvlink_gbps=450),
    "NVIDIA H100 SXM5 datasheet: 80 GB HBM3, 989 TFLOP/s dense BF16, 3.35 TB/s, NVLink 900 GB/s bidirectional",
)
register_gpu(
    "h200",
    GpuSpec(name="H200 SXM (datasheet)", memory_gb=141, bf16_tflops=989, hbm_tbps=4.8, nvlink_gbps=450),
    "NVIDIA H200 SXM datasheet: 141 GB HBM3e, 989 TFLOP/s dense BF16, 4.8 TB/s, NVLink 900 GB/s bidirectional",
)


def _cluster(name: str, gpu: str, nic_gbps: float, inter_us: float) -> ClusterSpec:
    return ClusterSpec(name=name, num_nodes=232, gpus_per_node=8, experts_per_gpu=1, gpu=GPU_PRESETS[gpu],
                       nic_gbps=nic_gbps, nics_per_node=8, latency_intra_node_us=1.0,
                       latency_inter_node_us=inter_us, topology=FatTreeSpec())


register_cluster("seed", _cluster("seed", "seed", 200, 3.0),
                 "232 nodes x 8 GPUs, seed GPU numbers, 8 x HDR 200 Gb/s per node, <1 us / <3 us")
register_cluster("h100-sxm", _cluster("h100-sxm", "h100-sxm", 400, 3.0),
                 "232 nodes x 8 H100 SXM5 (datasheet), 8 x NDR 400 Gb/s per node")
register_cluster("h200", _cluster("h200", "h200", 400, 3.0),
                 "232 nodes x 8 H200 SXM (datasheet), 8 x NDR 400 Gb/s per node")


def _validate(cls: type[T], data: dict[str, Any], source: str) -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError.from_validation(exc, source) from None


def validate_spec(cls: type[T], data: dict[str, Any], source: str) -> T:
    """A spec from a dict, a bad field a one-line `InputError` naming `source`, the field and the value."""
    return _validate(cls, data, source)


def _resolve(cls: type[T], registry: dict[str, T], ref: str | None, default: str, what: str,
             overrides: dict[str, Any] | None) -> T:
    ref = ref or default
    path = Path(ref)
    if ref in registry:
        base = registry[ref].model_dump()
        source = f"{what} preset {ref!r}"
    elif path.suffix.lower() in (".json", ".toml") or path.exists():
        data = load_mapping(path)
        source = str(path)
        preset = data.pop("preset", None)
        if preset is not None:
            if preset not in registry:
                raise InputError(f"unknown {what} preset {preset!r} (known: {', '.join(registry)})",
                                 source=source, field="preset")
            base = registry[preset].model_dump()
            base = _deep_merge(base, data)
        else:
            base = data
    else:
        raise InputError(f"unknown {what} preset {ref!r} (known: {', '.join(registry)}; or give a .json/.toml file)",
                         field=f"--{what}")
    if overrides:
        base = _deep_merge(base, {k: v for k, v in overrides.items() if v is not None})
    return _validate(cls, base, source)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_model(ref: str | None = None, **overrides: Any) -> ModelSpec:
    """A preset name or a JSON/TOML file (which may name a `preset` to start from)."""
    return _resolve(ModelSpec, MODEL_PRESETS, ref, "seed", "model", overrides)


def load_cluster(ref: str | None = None, **overrides: Any) -> ClusterSpec:
    """A preset name or a JSON/TOML file; `gpu` in a file may be a GPU preset name."""
    ref_path = Path(ref) if ref else None
    if ref_path is not None and ref not in CLUSTER_PRESETS and ref_path.suffix.lower() in (".json", ".toml"):
        data = load_mapping(ref_path)
        gpu = data.get("gpu")
        if isinstance(gpu, str):
            if gpu not in GPU_PRESETS:
                raise InputError(f"unknown GPU preset {gpu!r} (known: {', '.join(GPU_PRESETS)})",
                                 source=str(ref_path), field="gpu")
            data["gpu"] = GPU_PRESETS[gpu].model_dump()
        preset = data.pop("preset", None)
        if preset is not None and preset not in CLUSTER_PRESETS:
            raise InputError(f"unknown cluster preset {preset!r} (known: {', '.join(CLUSTER_PRESETS)})",
                             source=str(ref_path), field="preset")
        base = CLUSTER_PRESETS[preset].model_dump() if preset else {}
        merged = _deep_merge(_deep_merge(base, data), {k: v for k, v in overrides.items() if v is not None})
        return _validate(ClusterSpec, merged, str(ref_path))
    return _resolve(ClusterSpec, CLUSTER_PRESETS, ref, "seed", "cluster", overrides)


def list_presets() -> dict[str, dict[str, str]]:
    """{kind: {name: one-line description}} for `moeplace presets`."""
    out: dict[str, dict[str, str]] = {"model": {}, "cluster": {}, "gpu": {}}
    for kind, registry, cls in (("model", MODEL_PRESETS, "ModelSpec"), ("cluster", CLUSTER_PRESETS, "ClusterSpec"),
                                ("gpu", GPU_PRESETS, "GpuSpec")):
        for key in registry:
            out[kind][key] = PRESET_NOTES.get(f"{cls}:{key}", "")
    return out

