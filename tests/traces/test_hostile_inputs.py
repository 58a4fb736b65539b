"""Crafted and corrupt traces and statistics (issue 14): every reader ends in one line and exit 2.

Each case is one of the issue's reproductions (npz `num_experts` [8,8,8], 'eight', -3, NaN, 1e7; 0-d
`layers`; top-k with k = 0, 0 layers, duplicate or negative layer numbers; safetensors headers with negative,
2^62 x 2^62 or empty shapes; JSON lines with token 10^26, negative layers, rows wider than the experts) or
its neighbour, run through `moeplace stats build` the way a user would. The test asserts the one-line
error (no traceback: an uncaught exception fails the test), the file named, and the words that say which
field or line and value was wrong. None may allocate what the file merely declares, so the process's
address space is capped while they run.
"""

from __future__ import annotations

import io
import json
import resource
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.traces.helpers import run

TOPK = np.tile(np.array([0, 1]), (4, 2, 1))
GOOD_STATS = dict(format_version=np.int64(2), load=np.ones((2, 4), np.int64), coact=np.zeros((2, 4, 4), np.int64),
                  trans=np.zeros((1, 4, 4), np.int64), trans_primary=np.zeros((1, 4, 4), np.int64),
                  num_tokens=np.int64(2), top_k=np.int64(2), layers=np.array([2, 3]), provenance=np.str_("{}"),
                  tokens_per_layer=np.array([2, 2]), trans_tokens=np.array([2]), trans_dropped=np.array([0]),
                  dropped_records=np.str_("{}"), measured=np.array(["load", "coact", "trans"]),
                  trans_pairing=np.str_("all"), keep_paths=np.int64(-1))


@pytest.fixture(autouse=True)
def capped_memory():
    """8 GiB more address space than in use: a reader that allocates what a header declares fails loudly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    status = Path("/proc/self/status")
    used = next((int(line.split()[1]) << 10 for line in status.read_text().splitlines()
                 if line.startswith("VmSize:")), 0) if status.exists() else 0
    cap = used + (8 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def build(capsys, tmp_path, path, *extra):
    return run(["stats", "build", str(path), "-o", str(tmp_path / "out.npz"), "--force", "-q", *extra], capsys)


def refused(capsys, tmp_path, path, *words, extra=()):
    code, _, err = build(capsys, tmp_path, path, *extra)
    assert code == 2, err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("value, words", [
    (np.array([8, 8, 8]), ["num_experts", "must be one integer", "[8, 8, 8]"]),
    (np.str_("eight"), ["num_experts", "'eight'"]),
    (np.int64(-3), ["num_experts", "-3 is outside 2..4096"]),
    (np.float64("nan"), ["num_experts", "nan"]),
    (np.int64(10**7), ["num_experts", "10000000 is outside 2..4096"]),
    (np.float64(8.5), ["num_experts", "8.5"]),
])
def test_topk_num_experts(tmp_path, capsys, value, words):
    np.savez(tmp_path / "t.npz", topk=TOPK, num_experts=value)
    refused(capsys, tmp_path, tmp_path / "t.npz", *words)


@pytest.mark.parametrize("layers, words", [
    (np.int64(3), ["layers", "must be a list of integer layer numbers"]),
    (np.array([2, 2]), ["layers", "distinct and ascending"]),
    (np.array([-1, 2]), ["layers", "layer number -1 is outside"]),
    (np.array(["a", "b"]), ["layers", "must be a list of integer"]),
    (np.array([1.5, 2.0]), ["layers", "float64"]),
    (np.array([2**62, 2**62 + 1]), ["layers", "outside 0..1000000"]),
])
def test_topk_layer_numbers(tmp_path, capsys, layers, words):
    np.savez(tmp_path / "t.npz", topk=TOPK, num_experts=np.int64(4), layers=layers)
    refused(capsys, tmp_path, tmp_path / "t.npz", *words)


@pytest.mark.parametrize("shape", [(4, 2, 0), (4, 0, 2)])
def test_topk_with_no_choices_or_no_layers(tmp_path, capsys, shape):
    np.savez(tmp_path / "t.npz", topk=np.zeros(shape, np.int64), num_experts=np.int64(4))
    refused(capsys, tmp_path, tmp_path / "t.npz", "topk", f"shape {shape}")


def _npy_header(shape, descr="<i8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("shape, words", [
    ((10**12, 2, 2), ["truncated: 1000000000000 tokens announced"]),
    ((4, 2**31, 2**31), ["shape (4, 2147483648, 2147483648)", "layers"]),
])
def test_topk_declared_shapes_are_not_allocated(tmp_path, capsys, shape, words):
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as zf:
        zf.writestr("topk.npy", _npy_header(shape) + b"\0" * 64)
    refused(capsys, tmp_path, tmp_path / "t.npz", *words, extra=["--num-experts", "4"])


def test_statistics_member_declaring_terabytes(tmp_path, capsys):
    np.savez(tmp_path / "s.npz", **GOOD_STATS)
    with zipfile.ZipFile(tmp_path / "s.npz", "a") as zf:
        zf.writestr("paths.npy", _npy_header((2**20, 2**20, 8)))
    refused(capsys, tmp_path, tmp_path / "s.npz", "paths", "declares", "at most")


def test_truncated_and_garbage_npz(tmp_path, capsys):
    np.savez(tmp_path / "t.npz", topk=TOPK, num_experts=np.int64(4))
    raw = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "half.npz").write_bytes(raw[:len(raw) // 2])
    refused(capsys, tmp_path, tmp_path / "half.npz", "truncated or corrupt")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    refused(capsys, tmp_path, tmp_path / "junk.npz", "truncated or corrupt")


def test_object_arrays_are_never_unpickled(tmp_path, capsys):
    np.savez(tmp_path / "o.npz", topk=np.array([[1, 2]], dtype=object))
    refused(capsys, tmp_path, tmp_path / "o.npz", "pickled objects")
    np.savez(tmp_path / "m.npz", topk=TOPK, num_experts=np.array([1, "x"], dtype=object))
    refused(capsys, tmp_path, tmp_path / "m.npz", "num_experts", "pickled objects")


STATS_CASES = {
    "format_version": (np.str_("x"), "must be one integer"),
    "load": (np.full((2, 4), np.nan), "integer counts"),
    "top_k": (np.float64("nan"), "must be one integer"),
    "num_tokens": (np.int64(-1), "-1 is outside"),
    "layers": (np.array([2, 2]), "distinct and ascending"),
    "keep_paths": (np.str_("x"), "must be one integer"),
    "tokens_per_layer": (np.array([1.5, 2.5]), "integer counts"),
    "coact": (np.full((2, 4, 4), 0.5), "integer counts"),
    "dropped_records": (np.str_('{"a": "x"}'), "is not a count"),
    "provenance": (np.array(["a", "b"]), "must be one JSON string"),
    "measured": (np.array([["load"]]), "must be a list of names"),
}


@pytest.mark.parametrize("field", sorted(STATS_CASES))
def test_statistics_fields(tmp_path, capsys, field):
    value, words = STATS_CASES[field]
    np.savez(tmp_path / "s.npz", **{**GOOD_STATS, field: value})
    refused(capsys, tmp_path, tmp_path / "s.npz", field, words)


@pytest.mark.parametrize("top_k, words", [(0, "0 is outside 1..4096"), (-1, "-1 is outside"),
                                          (9, "top-k 9 is outside 1..4"), (2**62, "is outside 1..4096")])
def test_statistics_top_k(tmp_path, capsys, top_k, words):
    np.savez(tmp_path / "s.npz", **{**GOOD_STATS, "top_k": np.int64(top_k)})
    refused(capsys, tmp_path, tmp_path / "s.npz", "top_k", words)


def test_statistics_counts_that_wrap(tmp_path, capsys):
    np.savez(tmp_path / "s.npz", **{**GOOD_STATS, "load": np.full((2, 4), 2**64 - 1, np.uint64)})
    refused(capsys, tmp_path, tmp_path / "s.npz", "load", "is larger than")


def test_statistics_with_no_experts(tmp_path, capsys):
    empty = dict(load=np.ones((2, 0), np.int64), coact=np.zeros((2, 0, 0)), trans=np.zeros((1, 0, 0)),
                 trans_primary=np.zeros((1, 0, 0)))
    np.savez(tmp_path / "s.npz", **{**GOOD_STATS, **empty})
    refused(capsys, tmp_path, tmp_path / "s.npz", "num_experts", "0 experts per layer")


def test_the_good_statistics_file_reads(tmp_path, capsys):
    np.savez(tmp_path / "s.npz", **GOOD_STATS)
    code, _, err = build(capsys, tmp_path, tmp_path / "s.npz")
    assert code == 0, err


JSONL_CASES = {
    "token 10^26": ('{"token":100000000000000000000000000,"layer":0,"experts":[0,1]}', "line 1: token 1000"),
    "expert 10^26": ('{"token":1,"layer":0,"experts":[0,100000000000000000000000000]}', "line 1: expert id"),
    "negative layer": ('{"token":0,"layer":-3,"experts":[0,1]}', "line 1: layer -3 is outside"),
    "layer 10^26": ('{"token":0,"layer":100000000000000000000000000,"experts":[0,1]}', "line 1: layer 1000"),
    "huge layer": ('{"token":0,"layer":9223372036854775807,"experts":[0,1]}', "line 1: layer 92233"),
    "k > E": ('{"token":0,"layer":0,"experts":[0,1,2,3,0,1]}', "rows of 6 experts, more than the 4"),
    "4000 wide": ('{"token":0,"layer":0,"experts":[' + ",".join(["1"] * 4000) + "]}", "rows of 4000 experts"),
    "deep": ('{"token":0,"layer":0,"experts":' + "[" * 100000 + "]" * 100000 + "}", "line 1: invalid record"),
    "string id": ('{"token":0,"layer":0,"experts":["a",1]}', "line 1: invalid record"),
    "bad JSON": ('{"token":0,"layer":0,"experts":[0,1]}\n{"token":1,', "line 2: malformed or truncated JSON"),
    "array line": ("[1,2,3]", "line 1: invalid record"),
    "empty experts": ('{"token":0,"layer":0,"experts":[]}', "line 1: empty experts list"),
}


@pytest.mark.parametrize("case", sorted(JSONL_CASES))
def test_json_lines(tmp_path, capsys, case):
    text, words = JSONL_CASES[case]
    (tmp_path / "t.jsonl").write_text(text + "\n")
    refused(capsys, tmp_path, tmp_path / "t.jsonl", words, extra=["--num-experts", "4"])


def _safetensors(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes((len(h) if length is None else length).to_bytes(8, "little") + h + data)
    return path


SAFETENSORS_CASES = {
    "negative shape": ({"0_0": {"dtype": "I32", "shape": [-1, 2], "data_offsets": [0, 8]}}, "negative dimension"),
    "2^62 x 2^62": ({"0_0": {"dtype": "I32", "shape": [2**62, 2**62], "data_offsets": [0, 0]}}, "declares"),
    "2^32 x 2^32": ({"0_0": {"dtype": "I32", "shape": [2**32, 2**32], "data_offsets": [0, 8]}}, "declares"),
    "no tensors": ({}, "holds no tensors"),
    "float shape": ({"0_0": {"dtype": "I32", "shape": [1.5], "data_offsets": [0, 4]}}, "bad header entry"),
    "string entry": ({"0_0": "x"}, "bad header entry"),
    "unicode digits": ({"١_٢": {"dtype": "I32", "shape": [4], "data_offsets": [0, 16]}}, "is not '<iteration>"),
    "deep header": (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    "header past the end": (b"{}", "truncated"),
}


@pytest.mark.parametrize("kind", ["rank0", "cooccurrence_rank0", "token_selected_experts_rank0"])
@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_safetensors(tmp_path, capsys, kind, case):
    header, words = SAFETENSORS_CASES[case]
    length = 2**63 if case == "header past the end" else None
    path = _safetensors(tmp_path / f"{kind}.safetensors", header, b"\0" * 16, length)
    refused(capsys, tmp_path, path, words, extra=["--num-experts", "4", "--top-k", "2"])


@pytest.mark.parametrize("meta, words", [
    ({"num_experts": "x", "num_experts_per_token": 2}, "num_experts: must be one integer, got 'x'"),
    ({"num_experts": [4], "num_experts_per_token": 2}, "num_experts: must be one integer"),
    ({"num_experts": 4.5, "num_experts_per_token": 2}, "num_experts: must be one integer, got 4.5"),
    ({"num_experts": True, "num_experts_per_token": 1}, "num_experts: must be one integer"),
    ({"num_experts": 10**7, "num_experts_per_token": 2}, "num_experts: 10000000 is outside"),
    ({"num_experts": 4, "num_experts_per_token": 9}, "num_experts_per_token: 9 is outside 1..4"),
    ([1], "must be a JSON object"),
])
def test_trtllm_meta_info(tmp_path, capsys, meta, words):
    d = tmp_path / "stats"
    d.mkdir()
    (d / "meta_info.json").write_text(json.dumps(meta))
    _safetensors(d / "rank0.safetensors", {"0_0": {"dtype": "I32", "shape": [4], "data_offsets": [0, 16]}},
                 b"\1\0\0\0" * 4)
    code, _, err = build(capsys, tmp_path, d)
    assert code == 2 and err.count("\n") == 1 and "meta_info.json" in err and words in err, err


def test_csv_with_a_5000_digit_count(tmp_path, capsys):
    (tmp_path / "c.csv").write_text("layer,expert,load\n0,0,1" + "0" * 40 + "\n")
    refused(capsys, tmp_path, tmp_path / "c.csv", "line 2", "is larger than", extra=["--num-experts", "4",
                                                                                     "--top-k", "2"])
