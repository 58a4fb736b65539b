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


@pytest.mark.parametrize("expr, message", [
    ("a[0-999]b[0-999]c[0-999]", "hosts: hostlist 'a[0-999]b[0-999]c[0-999]' names more than 1000000 hosts"),
    ("gpu[\u0661-\u0664]", "hosts: bad range '\u0661-\u0664' in hostlist 'gpu[\u0661-\u0664]'"),
    ("gpu001\n", "hosts: hostlist 'gpu001\\n' has a control character (newline, tab, ...)"),
    ("a$(id),b", "hosts: host name 'a$(id)' is not a valid host name (ASCII letters, digits, '.', '_', '-') "
                 "in hostlist 'a$(id),b'"),
    ("x" * 254, f"hosts: host name {'x' * 40!r}... is 254 characters, at most 253 in hostlist {'x' * 80!r}"),
    ("x" * 64 + ".site", f"hosts: host name {'x' * 40!r} has a 64-character label, at most 63 in hostlist "
                         f"{'x' * 64 + '.site'!r}"),
])
def test_hostile_hostlists_are_refused_before_expanding(expr, message):
    with pytest.raises(InputError) as err:
        expand_hostlist(expr)
    assert str(err.value) == message


def test_a_host_name_of_253_characters_in_labels_of_63_is_fine():
    name = ".".join(["x" * 63] * 4)[:253]
    assert expand_hostlist(name) == [name]
