"""The query client: osqueryi's output formats, and queries over a real manager socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers.harness import core_with_fixture, short_dir

from osquery_audit_ext.sdk.client import QueryError, query
from osquery_audit_ext.sdk.formats import (
    format_csv,
    format_json,
    format_line,
    format_pretty,
    render,
)
from osquery_audit_ext.sdk.result import QueryResult


@pytest.fixture(scope="module")
def fixture_core():
    with core_with_fixture() as running:
        yield running


RESULT = QueryResult(
    rows=[
        {"pid": "1", "path": "/sbin/init", "cmdline": ""},
        {"pid": "4242", "path": "/usr/bin/ünïcode", "cmdline": 'sh -c "x"'},
    ],
    columns=["pid", "path", "cmdline"],
)
EMPTY = QueryResult(rows=[], columns=["pid"])


def test_json_is_exactly_osqueryi_json():
    assert format_json(RESULT) == (
        "[\n"
        '  {"cmdline":"","path":"/sbin/init","pid":"1"},\n'
        '  {"cmdline":"sh -c \\"x\\"","path":"/usr/bin/ünïcode","pid":"4242"}\n'
        "]\n"
    )
    assert format_json(EMPTY) == "[\n\n]\n"
    assert [json.loads(line.rstrip(",")) for line in format_json(RESULT).splitlines()[1:-1]] == (
        RESULT.rows
    )


def test_pretty_is_osqueryi_table():
    assert format_pretty(RESULT) == (
        "+------+------------------+-----------+\n"
        "| pid  | path             | cmdline   |\n"
        "+------+------------------+-----------+\n"
        "| 1    | /sbin/init       |           |\n"
        '| 4242 | /usr/bin/ünïcode | sh -c "x" |\n'
        "+------+------------------+-----------+\n"
    )
    assert format_pretty(EMPTY) == ""


def test_line_mode():
    assert format_line(RESULT) == (
        "    pid = 1\n"
        "   path = /sbin/init\n"
        "cmdline = \n"
        "\n"
        "    pid = 4242\n"
        "   path = /usr/bin/ünïcode\n"
        'cmdline = sh -c "x"\n'
    )
    short = QueryResult([{"a": "1"}], ["a"])
    assert format_line(short) == "    a = 1\n"


def test_csv_mode_quotes_like_osqueryi():
    assert format_csv(RESULT) == (
        'pid,path,cmdline\n1,/sbin/init,\n4242,"/usr/bin/ünïcode","sh -c ""x"""\n'
    )
    odd = QueryResult([{"v": "a,b"}, {"v": "it's"}, {"v": "plain"}], ["v"])
    assert format_csv(odd) == 'v\n"a,b"\n"it\'s"\nplain\n'
    assert format_csv(EMPTY) == ""


def test_render_dispatch():
    assert render(RESULT, "json") == format_json(RESULT)
    assert render(RESULT) == format_pretty(RESULT)
    with pytest.raises(ValueError, match="unknown output mode"):
        render(RESULT, "xml")


def test_query_over_the_manager_socket(fixture_core):
    core, _, _ = fixture_core
    rows, columns = query(core.socket_path, "SELECT num, name, secret FROM fixture_echo")
    assert columns == ["num", "name", "secret"]
    assert rows == [{"num": "1", "name": "a", "secret": "s"}]
    rows, columns = query(core.socket_path, "SELECT path FROM fixture_required WHERE path = '/x'")
    assert (rows, columns) == ([{"path": "/x"}], ["path"])


def test_query_errors_are_one_line(fixture_core):
    core, _, _ = fixture_core
    with pytest.raises(QueryError, match=r"^no such table: nope$"):
        query(core.socket_path, "SELECT * FROM nope")
    with pytest.raises(QueryError, match=r"^kernel audit is not available here$"):
        query(core.socket_path, "SELECT * FROM fixture_errors WHERE kind = 'audit'")
    with short_dir() as directory:
        missing = os.path.join(directory, "none.em")
        with pytest.raises(QueryError, match=f"socket {missing} does not exist"):
            query(missing, "SELECT 1")
        stale = os.path.join(directory, "stale.em")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(stale)
        listener.close()  # the file stays, nobody listens: what a crashed osqueryd leaves
        with pytest.raises(QueryError, match="connection refused"):
            query(stale, "SELECT 1")


def test_query_command_end_to_end(fixture_core):
    """`osquery-audit-ext query` as a user runs it, against the core's socket."""
    core, _, _ = fixture_core

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "osquery_audit_ext",
                "query",
                "--socket",
                core.socket_path,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run("--json", "SELECT name, num FROM fixture_echo")
    assert (ok.returncode, ok.stdout) == (0, '[\n  {"name":"a","num":"1"}\n]\n')
    lines = run("--line", "SELECT name FROM fixture_echo")
    assert lines.stdout == " name = a\n"
    bad = run("SELECT * FROM nope")
    assert bad.returncode == 1
    assert bad.stderr == "osquery-audit-ext: no such table: nope\n"


def test_columns_of_later_statements_follow_in_order_of_first_row(fixture_core):
    """getQueryColumns names the first statement's columns; keys only later rows hold come
    after them, each row's new keys sorted, in the order the rows come."""
    core, _, _ = fixture_core
    rows, columns = query(core.socket_path, "SELECT 1 AS b, 2 AS a; SELECT 3 AS z, 4 AS y, 5 AS a")
    assert rows == [{"b": "1", "a": "2"}, {"z": "3", "y": "4", "a": "5"}]
    assert columns == ["b", "a", "y", "z"]
