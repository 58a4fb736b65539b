"""What `emit` needs beyond the plan: ports, buffer sizing, Slurm header fields; recorded in `artifacts.json`.

`check` re-renders every artifact from `plan.json` and these options, so they are stored with the files.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from moeplace.launch.manifest import checked_trace_file

_SLURM_WORD = re.compile(r"[A-Za-z0-9_.:,@+-]{1,200}")


class EmitOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    master_port: int = Field(default=29500, gt=0, lt=65536,
                             description="process-group rendezvous port on rank 0's host")
    rdzv_port: int = Field(default=29400, gt=0, lt=65536, description="torchrun c10d rendezvous port")
    tokens_per_step: int = Field(default=4096, gt=0, le=1 << 24, description="tokens entering the first MoE layer per step")
    capacity_factor: float = Field(default=2.0, ge=1.0, le=1000.0, allow_inf_nan=False, description="buffer slots over the mean tokens per rank")
    micro_batches: int = Field(default=2, ge=1, le=1024)
    job_name: str | None = Field(default=None, description="Slurm job name [default: moeplace-<model>]")
    partition: str | None = None
    account: str | None = None
    time: str | None = Field(default=None, description="Slurm time limit, e.g. 00:30:00")
    slurm_gpus: bool = Field(default=True, description="request --gpus-per-node in the sbatch script")
    cpus_per_rank: int = Field(default=1, ge=1, le=4096, description="cores per rank in the Open MPI rankfile")
    trace_file: str | None = Field(default=None, description="the plan's trace, a name inside the output directory")

    @field_validator("trace_file")
    @classmethod
    def _trace_inside(cls, v: str | None) -> str | None:
        return checked_trace_file(v)

    @field_validator("job_name", "partition", "account", "time")
    @classmethod
    def _slurm_word(cls, v: str | None) -> str | None:
        if v is not None and not _SLURM_WORD.fullmatch(v):
            raise ValueError(f"{v!r} has characters a #SBATCH line cannot carry")
        return v

    def slurm_job_name(self, model_name: str) -> str:
        if self.job_name:
            return self.job_name
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_name).strip("-") or "plan"
        return f"moeplace-{safe}"
