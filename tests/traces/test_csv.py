"""Count matrices as CSV: the wide load matrix, the long layout, round trips and bad cells."""

from __future__ import annotations

import numpy as np
import pytest

from moeplace.traces.csvcounts import to_csv
from moeplace.traces.read import read_stats
from moeplace.traces.stats import RoutingStats
from tests.traces.helpers import DATA, assert_error, flame_topk, run

CSV = DATA / "csv"


def test_wide_load_matrix():
    s = read_stats(CSV / "load_wide.csv")
    ref = RoutingStats.from_paths(flame_topk(), 64)
    assert s.measured == ("load",) and s.layer_numbers == tuple(range(2, 10)) and s.top_k == 6
    assert np.array_equal(s.load_LE, ref.load_LE) and s.tokens_L.tolist() == [512] * 8


def test_long_layout_holds_what_was_measured():
    s = read_stats(CSV / "counts_long.csv")
    ref = RoutingStats.from_paths(flame_topk()[:16], 64)
    assert s.measured == ("load", "trans", "trans_primary") and s.num_tokens == 16
    for name in ("load_LE", "trans_LEE", "trans_primary_LEE"):
        assert np.array_equal(getattr(s, name), getattr(ref, name)), name
    assert s.trans_tokens_L1.tolist() == [16] * 7


def test_round_trip_of_full_statistics(tmp_path):
    ref = RoutingStats.from_paths(flame_topk()[:40], 64, layer_numbers=tuple(range(2, 10)))
    (tmp_path / "c.csv").write_text(to_csv(ref))
    s = read_stats(tmp_path / "c.csv")
    for name in ("load_LE", "coact_LEE", "trans_LEE", "trans_primary_LEE", "tokens_L"):
        assert np.array_equal(getattr(s, name), getattr(ref, name)), name
    assert s.layer_numbers == ref.layer_numbers


def test_one_triangle_of_coact_is_mirrored(tmp_path):
    (tmp_path / "c.csv").write_text("# top_k=2 num_experts=3\nkind,layer,expert,other,count\n"
                                    "load,0,0,,2\nload,0,1,,1\nload,0,2,,1\ncoact,0,0,1,1\ncoact,0,0,2,1\n")
    s = read_stats(tmp_path / "c.csv")
    assert s.coact_LEE[0].tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]] and s.num_tokens == 2


BAD = [  # line numbers count the "# top_k=2" line put in front
    ("kind,layer,expert,other,count\nload,0,0,,-3\n", "line 3: negative count -3"),
    ("kind,layer,expert,other,count\nlaod,0,0,,3\n", "line 3: kind 'laod' is not one of load, coact, trans, "
     "trans_primary"),
    ("kind,layer,expert,other,count\nload,0,0,,3\nload,0,x,,1\n", "line 4: expert id 'x' is not a number"),
    ("kind,layer,expert,other,count\nload,0,0,,1.5\n", "line 3: count '1.5' is not a whole number"),
    ("kind,layer,expert,other,count\nload,0,0,,2\ntrans,0,0,1,4\n", "line 4: trans at layer 0: not one of the "
     "load rows' layers that has a next layer (0)"),
    ("kind,layer,expert,count\nload,0,0\n", "line 3: 3 cells, the header has 4"),
    ("", "empty file"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_cells_are_one_line_errors(tmp_path, capsys, text, message):
    f = tmp_path / "c.csv"
    f.write_text(("# top_k=2\n" if text else "") + text)
    code, _, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: {message}")


def test_counts_need_top_k(tmp_path, capsys):
    f = tmp_path / "c.csv"
    f.write_text("1,2,3\n4,5,6\n")
    code, _, err = run(["stats", "build", str(f), "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: count matrices carry no top-k: add a '# top_k=K' line or give --top-k/--model")
    code, _, err = run(["stats", "build", str(f), "--top-k", "2", "-o", str(tmp_path / "s.npz")], capsys)
    assert_error(code, err, f"{f}: load: layer 1 counts 15 choices, not a multiple of top_k 2 (is top_k right?)")
