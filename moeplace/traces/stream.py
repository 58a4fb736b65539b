"""The JSON-lines driver: chunks to worker processes, leftovers joined in order, one `RoutingStats` out.

The parent parses the first chunk itself (to learn k and the layer numbers), then hands byte ranges to
`jobs` worker processes, each with its own `Accumulator`. Results come back in any order and are joined in
file order; at the end each worker sends its accumulator and the parent adds them up. Output does not
depend on `jobs` (counts add; the sample is a bottom-k by key, and keys depend only on positions).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable
from pathlib import Path

from moeplace.errors import InputError
from moeplace.traces.aggregate import Accumulator
from moeplace.traces.join import Records, close, group, split_stale
from moeplace.traces.stats import RoutingStats
from moeplace.traces.jsonl import (
    DEFAULT_CHUNK_BYTES,
    ChunkError,
    JsonlPlan,
    as_input_error,
    chunk_bounds,
    count_chunk,
    first_look,
    read_chunk,
)
from moeplace.traces.kernels import sample_keys

DEFAULT_WINDOW_BYTES = 256 << 20
Progress = Callable[[int, int], None]


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover (macOS)
        return max(1, os.cpu_count() or 1)


def read_jsonl(path: str | Path, *, num_experts: int, layer_numbers: tuple[int, ...] | None = None,
               keep_paths: int | None = 65536, salt: int = 0, jobs: int | None = None,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES, window_bytes: int = DEFAULT_WINDOW_BYTES,
               progress: Progress | None = None, provenance: dict | None = None) -> RoutingStats:
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise InputError("empty file: holds no records", source=str(p))
    bounds = chunk_bounds(p, size, chunk_bytes)
    first = read_chunk(str(p), *bounds[0])
    try:
        recs, k, seen = first_look(first)
    except ChunkError as exc:
        raise as_input_error(str(p), exc) from None
    if k > num_experts:
        raise InputError(f"rows of {k} experts, more than the {num_experts} experts a layer has", source=str(p),
                         field="line 1")
    layers = tuple(sorted(layer_numbers)) if layer_numbers else seen
    plan = JsonlPlan(str(p), int(num_experts), k, layers, keep_paths, salt)
    acc = Accumulator(layers, plan.num_experts, k, keep_paths, str(p))
    window_chunks = max(1, -(-window_bytes // max(chunk_bytes, 1)))
    starts = [b[0] for b in bounds]
    joiner = _Joiner(plan, acc)
    rest = bounds[1:]
    jobs = default_jobs() if jobs is None else max(1, jobs)
    # after chunk i, tokens whose last record lies before chunk i + 1 - window_chunks are closed as partial
    ends = [starts[max(0, i + 1 - window_chunks)] for i in range(len(bounds))]

    def first_chunk() -> None:
        joiner.add(count_chunk(plan, acc, first, 0, recs), ends[0])
        if progress:
            progress(bounds[0][1], size)

    try:
        if jobs > 1 and len(rest) > 1:
            _parallel(plan, acc, joiner, rest, ends[1:], jobs, size, progress, first_chunk)
        else:
            first_chunk()
            for i, (start, end) in enumerate(rest):
                joiner.add(count_chunk(plan, acc, read_chunk(plan.path, start, end), start), ends[i + 1])
                if progress:
                    progress(end, size)
    except ChunkError as exc:
        raise as_input_error(str(p), exc) from None
    joiner.finish()
    return acc.finish(dict(provenance or {}))


class _Joiner:
    """The pool of records of incomplete tokens, fed chunk by chunk in file order."""

    def __init__(self, plan: JsonlPlan, acc: Accumulator):
        self.plan, self.acc = plan, acc
        self.pool = Records.empty(plan.top_k)
        self.L = len(plan.layer_numbers)

    def add(self, rest: Records, before: int) -> None:
        """Join a chunk's leftovers; close tokens whose last record lies before position `before`."""
        if rest.size == 0 and self.pool.size == 0:
            return
        g = group(Records.concat([self.pool, rest]), self.L)
        self.acc.drop("duplicate_record", g.duplicates)
        self.acc.add_tokens(g.complete_NLK, sample_keys(self.plan.salt, g.complete_pos_N), g.complete_pos_N)
        stale, self.pool = split_stale(g.rest, before)
        self._close(stale)

    def finish(self) -> None:
        self._close(self.pool)
        self.pool = Records.empty(self.plan.top_k)

    def _close(self, rec: Records) -> None:
        if rec.size:
            paths, present, first = close(rec, self.L)
            self.acc.add_tokens(paths, sample_keys(self.plan.salt, first), first, present)


def _worker(plan: JsonlPlan, tasks: mp.Queue, results: mp.Queue) -> None:
    acc = Accumulator(plan.layer_numbers, plan.num_experts, plan.top_k, plan.keep_paths)
    while True:
        item = tasks.get()
        if item is None:
            results.put(("final", acc.state()))
            return
        index, start, end = item
        try:
            rest = count_chunk(plan, acc, read_chunk(plan.path, start, end), start)
            results.put(("chunk", index, rest))
        except ChunkError as exc:
            results.put(("error", index, exc.offset, exc.message))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
            results.put(("crash", index, f"{type(exc).__name__}: {exc}"))
            return


def _parallel(plan: JsonlPlan, acc: Accumulator, joiner: _Joiner, bounds: list[tuple[int, int]], ends: list[int],
              jobs: int, size: int, progress: Progress | None, first_chunk: Callable[[], None]) -> None:
    """Chunks 1.. go to worker processes while this process counts chunk 0 (`first_chunk`)."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    tasks, results = ctx.Queue(), ctx.Queue()
    jobs = min(jobs, len(bounds))
    procs = [ctx.Process(target=_worker, args=(plan, tasks, results), daemon=True) for _ in range(jobs)]
    for proc in procs:
        proc.start()
    try:
        for i, (start, end) in enumerate(bounds):
            tasks.put((i, start, end))
        first_chunk()
        pending: dict[int, Records] = {}
        nxt = 0
        while nxt < len(bounds):
            msg = _get(results, procs)
            if msg[0] == "error":
                raise ChunkError(msg[2], msg[3])
            if msg[0] == "crash":
                raise RuntimeError(f"trace worker failed on chunk {msg[1]}: {msg[2]}")
            pending[msg[1]] = msg[2]
            while nxt in pending:
                joiner.add(pending.pop(nxt), ends[nxt])
                if progress:
                    progress(bounds[nxt][1], size)
                nxt += 1
        for _ in procs:
            tasks.put(None)
        for _ in procs:
            msg = _get(results, procs)
            assert msg[0] == "final", msg[0]
            acc.absorb(Accumulator.from_state(msg[1]))
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _get(results: mp.Queue, procs: list) -> tuple:
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
            if dead:
                raise RuntimeError(f"trace worker exited with code {dead[0].exitcode}") from None
