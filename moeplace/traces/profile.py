"""Routing profiles: the per-layer measures of a workload as a small JSON file, and the shipped presets.

A profile holds no token data, only what synthesis fits (load CV, co-activation lift, affinity lift per
layer) and the summary `stats show` prints, so it can be shared where a trace cannot. Presets fitted to
the real traces in shared/data/routing live in `moeplace/data/<name>.profile.json`, written by
`moeplace stats profile` (see docs/traces.md for the commands).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from moeplace.errors import InputError
from moeplace.traces.measures import measure
from moeplace.traces.stats import RoutingStats

PROFILE_FORMAT = 1
SUFFIX = ".profile.json"


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = PROFILE_FORMAT
    name: str
    source: str = Field(description="where the measured statistics came from")
    num_layers: int = Field(gt=0)
    num_experts: int = Field(gt=1)
    top_k: int = Field(gt=0)
    num_tokens: int = Field(ge=0)
    layer_numbers: tuple[int, ...]
    trans_pairing: str = "all"
    lift_method: str
    load_cv: tuple[float, ...]
    coact_lift: tuple[float, ...] | None = None
    affinity_lift: tuple[float, ...] | None = None
    summary: dict[str, float | None] = Field(default_factory=dict)
    notes: str = ""

    @model_validator(mode="after")
    def _check(self) -> Profile:
        L = self.num_layers
        if len(self.layer_numbers) != L or len(self.load_cv) != L:
            raise ValueError(f"layer_numbers and load_cv need {L} values")
        if self.coact_lift is not None and len(self.coact_lift) != L:
            raise ValueError(f"coact_lift needs {L} values")
        if self.affinity_lift is not None and len(self.affinity_lift) != L - 1:
            raise ValueError(f"affinity_lift needs {L - 1} values")
        for name in ("load_cv", "coact_lift", "affinity_lift"):
            vals = getattr(self, name) or ()
            if any(not math.isfinite(v) or v < -1 for v in vals):
                raise ValueError(f"{name} holds a value that is not finite or below -1")
        return self


def _finite(values: tuple[float, ...]) -> tuple[float, ...] | None:
    return None if not values or any(math.isnan(v) for v in values) else tuple(round(v, 6) for v in values)


def profile_of(stats: RoutingStats, name: str, source: str, notes: str = "") -> Profile:
    m = measure(stats)
    return Profile(name=name, source=source, num_layers=stats.num_moe_layers, num_experts=stats.num_experts,
                   top_k=stats.top_k, num_tokens=stats.num_tokens, layer_numbers=stats.layer_numbers,
                   trans_pairing=stats.trans_pairing, lift_method=m.lift_method,
                   load_cv=tuple(round(v, 6) for v in m.load_cv), coact_lift=_finite(m.coact_lift),
                   affinity_lift=_finite(m.affinity_lift),
                   summary={k: (None if math.isnan(v) else round(v, 6)) for k, v in m.summary().items()}, notes=notes)


def profile_json(profile: Profile) -> str:
    return json.dumps(profile.model_dump(mode="json"), indent=2) + "\n"


def _data_dir():
    return resources.files("moeplace").joinpath("data")


def preset_names() -> list[str]:
    d = _data_dir()
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in d.iterdir() if p.name.endswith(SUFFIX))


def read_profile(path: str | Path) -> Profile:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc})", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=str(p)) from None
    return _validate(data, str(p))


def _validate(data: object, src: str) -> Profile:
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "profile"
        raise InputError(err["msg"], source=src, field=where) from None


def load_preset(name: str) -> Profile:
    if name not in preset_names():
        raise InputError(f"unknown profile preset {name!r} (presets: {', '.join(preset_names()) or 'none'})",
                         field="--like")
    text = _data_dir().joinpath(name + SUFFIX).read_text(encoding="utf-8")
    return _validate(json.loads(text), f"preset {name}")
