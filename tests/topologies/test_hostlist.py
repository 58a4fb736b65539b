"""Slurm hostlist expressions: expansion with Slurm's padding rules, errors, and compression round trips."""

from __future__ import annotations

import re

import pytest

from moeplace.errors import InputError
from moeplace.topologies.hostlist import compress_hostlist, expand_hostlist


@pytest.mark.parametrize("expr, hosts", [
    ("gpu[001-003,040]", ["gpu001", "gpu002", "gpu003", "gpu040"]),
    ("n[8-10]", ["n8", "n9", "n10"]),                   # width of lo: 1
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("a[1-2]b[3-4]", ["a1b3", "a1b4", "a2b3", "a2b4"]),  # cartesian product, left-most slowest
    ("x1,x2,y[5]", ["x1", "x2", "y5"]),
    ("rack1-n[1-2]", ["rack1-n1", "rack1-n2"]),
    ("n2,n1,n2", ["n2", "n1", "n2"]),                    # order and duplicates kept
])
def test_expand(expr, hosts):
    assert expand_hostlist(expr) == hosts


@pytest.mark.parametrize("expr, message", [
    ("gpu[001-", "unclosed '['"),
    ("gpu]1", "unbalanced ']'"),
    ("gpu[5-2]", "runs backwards"),
    ("gpu[a-b]", "bad range 'a-b'"),
    ("gpu[[1]]", "nested '['"),
    ("n1,,n2", "empty host name"),
    ("", "empty hostlist"),
])
def test_malformed(expr, message):
    with pytest.raises(InputError, match=re.escape(message)):
        expand_hostlist(expr)


@pytest.mark.parametrize("hosts", [
    [f"node{i:03d}" for i in range(81, 101)],
    ["n9", "n10", "n11", "m01", "m02", "login"],
    ["gpu010", "gpu9", "gpu8"],
    ["a1", "a3", "a4", "a01"],
])
def test_compress_round_trips(hosts):
    assert expand_hostlist(compress_hostlist(hosts)) == hosts


def test_compress_is_compact():
    assert compress_hostlist([f"node{i:03d}" for i in range(81, 101)]) == "node[081-100]"
    assert compress_hostlist(["gpu001", "gpu002", "gpu003", "gpu040"]) == "gpu[001-003,040]"
