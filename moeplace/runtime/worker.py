"""`python -m moeplace.runtime.worker --manifest PATH --out DIR [--steps N] [--device auto|cpu|cuda]`.

One process per GPU (torchrun, srun, or the tests' spawner). The process finds its manifest entry by
(host name or $MOEPLACE_HOST, LOCAL_RANK), joins the process group under that entry's rank, runs the plan,
and writes DIR/ranks/rank-{rank:05d}.json; rank 0 also writes DIR/measured.json. Exit 0 on success; on
any failure one line on stderr naming the cause and a non-zero exit on every rank (2: the launch does not
match the manifest; 3: a peer failed or a collective timed out; 1: anything else).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from moeplace.errors import InputError
from moeplace.fileio import file_digest
from moeplace.runtime.failure import EXIT_LAUNCH, EXIT_OTHER, EXIT_PEER, PeerFailure, die


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m moeplace.runtime.worker", description=__doc__.split("\n")[0])
    p.add_argument("--manifest", required=True, help="manifest.json written by `moeplace emit`")
    p.add_argument("--out", required=True, help="run directory (ranks/ and measured.json go here)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per mode (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                   help="compute dtype (auto: the model's on GPU, fp32 on CPU)")
    p.add_argument("--tokens", type=int, default=None, help="tokens per step (default: the manifest's)")
    p.add_argument("--micro-batches", type=int, default=None, help="micro-batches in flight (default: manifest)")
    p.add_argument("--routing-steps", type=int, default=2, help="distinct routing draws the run cycles through")
    p.add_argument("--weights", default=None, help="safetensors checkpoint (file, folder or index) for the experts")
    p.add_argument("--no-graphs", action="store_true", help="run the experts eagerly (no CUDA graphs)")
    p.add_argument("--engine", choices=("auto", "generic", "epstep"), default="auto",
                   help="epstep: the fused expert-parallel step (ep flow, one expert per rank per layer)")
    p.add_argument("--transport", choices=("auto", "nccl", "symm", "symm-ce"), default="auto",
                   help="epstep transport: NCCL all-to-all in the graph, or symmetric memory inside one node "
                        "(SM stores or copy engine; auto: symm for one micro-batch, symm-ce for several)")
    p.add_argument("--check", action="store_true",
                   help="compare the result with the single-process reference (small models only)")
    return p.parse_args(argv)


def _report_launch_error(manifest, message: str) -> None:
    """A process that cannot find its entry still tells the others, so that none waits for it."""
    from moeplace.runtime.deps import import_torch

    torch = import_torch()
    import datetime

    addr = os.environ.get("MASTER_ADDR") or manifest.master_addr
    port = int(os.environ.get("MASTER_PORT") or manifest.master_port)
    store = torch.distributed.TCPStore(addr, port, manifest.world_size, False,
                                       timeout=datetime.timedelta(seconds=10), wait_for_workers=False)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true":
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = torch.distributed.PrefixStore(f"/worker/attempt_{restart}", store)
    store = torch.distributed.PrefixStore("moeplace", store)
    from moeplace.runtime.comm import FAIL_COUNT

    n = store.add(FAIL_COUNT, 1)
    store.set(f"fail/{n}", f"a process on {os.environ.get('MOEPLACE_HOST') or os.uname().nodename} failed: {message}")


_PEER_SIGNS = (("connection reset by peer", "its process died (connection reset by peer)"),
               ("connection closed by peer", "its process died (connection closed by peer)"),
               ("broken pipe", "its process died (broken pipe)"),
               ("connection was likely closed", "lost the rendezvous store (rank 0's process is gone)"),
               ("ncclremoteerror", "NCCL reported a remote error (a peer died or its network failed)"),
               ("timed out", "a transfer timed out"),
               ("timeout", "a transfer timed out"))


def _peer_cause(text: str) -> str | None:
    """Turn gloo's and NCCL's multi-line errors into a short cause, or None when no peer is to blame."""
    lowered = text.lower()
    for sign, cause in _PEER_SIGNS:
        if sign in lowered:
            return cause
    return None


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # c10d's retry chatter would bury the one-line cause
    args = parse_args(argv)
    from moeplace.launch.manifest import Manifest
    from moeplace.runmodel.identity import LaunchError, check_manifest, resolve_identity

    path = Path(args.manifest)
    try:
        from moeplace.fileio import load_mapping

        try:
            manifest = Manifest.model_validate(load_mapping(path))
        except InputError:
            raise
        except Exception as exc:  # pydantic.ValidationError
            errs = getattr(exc, "errors", lambda: [{"msg": str(exc), "loc": ()}])()
            loc = ".".join(str(x) for x in errs[0]["loc"])
            raise InputError(errs[0]["msg"], source=str(path), field=loc or None) from None
        check_manifest(manifest, source=str(path))
        ident = resolve_identity(manifest, source=str(path))
    except LaunchError as exc:
        if "manifest" in locals() and exc.field != "world_size":
            try:
                _report_launch_error(manifest, str(exc))
            except Exception:  # noqa: BLE001 - nobody to tell: the others time out at rendezvous
                pass
        die(None, str(exc), EXIT_LAUNCH)
        return
    except InputError as exc:
        die(None, str(exc), EXIT_LAUNCH)
        return
    from moeplace.runtime.rank_run import RunConfig, execute

    cfg = RunConfig(out=Path(args.out), steps=args.steps, warmup=args.warmup, device=args.device, dtype=args.dtype,
                    tokens=args.tokens, micro_batches=args.micro_batches, routing_steps=args.routing_steps,
                    weights=args.weights, graphs=not args.no_graphs, engine=args.engine, transport=args.transport,
                    check=args.check, manifest_dir=path.parent, manifest_sha256=file_digest(path))
    state: dict = {}
    try:
        execute(manifest, ident, cfg, state)
    except PeerFailure as exc:
        die(ident.rank, str(exc), EXIT_PEER, state.get("on_exit"))
    except InputError as exc:
        die(ident.rank, str(exc), EXIT_LAUNCH, state.get("on_exit"))
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, on every failure
        where = state.get("where", "the run")
        reported = None
        try:
            reported = state["peer_failure"]() if "peer_failure" in state else None
        except Exception:  # noqa: BLE001 - the store is gone with rank 0
            reported = None
        if reported:
            die(ident.rank, f"stopping during {where}: {reported}", EXIT_PEER, state.get("on_exit"))
        peer = _peer_cause(str(exc))
        if peer:
            die(ident.rank, f"a peer failed during {where}: {peer}", EXIT_PEER, state.get("on_exit"))
        text = " ".join(str(exc).split())[:300]
        die(ident.rank, f"failed during {where}: {type(exc).__name__}: {text}", EXIT_OTHER, state.get("on_exit"))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
