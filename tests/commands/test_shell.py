"""The shell's input loop (osqueryi's) over a real core, and the shell/daemon commands."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest
from helpers.harness import core_with_fixture, end_process, short_dir, wait_until

from osquery_audit_ext.app.state import StateDir
from osquery_audit_ext.commands.shell import Shell


@pytest.fixture(scope="module")
def fixture_core():
    with core_with_fixture() as running:
        yield running


def run_shell(core, text: str, *, interactive: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    shell = Shell(core, out=out, err=err)
    code = shell.run(io.StringIO(text), interactive=interactive)
    return code, out.getvalue(), err.getvalue()


def test_tables_and_schema(fixture_core):
    core, _, _ = fixture_core
    code, out, err = run_shell(core, ".tables fixture_\n.schema fixture_required\n")
    assert (code, err) == (0, "")
    assert out == (
        "  => fixture_echo\n"
        "  => fixture_errors\n"
        "  => fixture_required\n"
        "  => fixture_rows\n"
        "  => fixture_values\n"
        "CREATE TABLE fixture_required(`path` TEXT, `size` BIGINT);\n"
    )
    _, everything, _ = run_shell(core, ".tab\n")
    assert "  => osquery_extensions\n" in everything and "  => time\n" in everything


def test_statements_span_lines_and_modes_switch(fixture_core):
    core, _, _ = fixture_core
    text = (
        "-- a comment line\n"
        "\n"
        "SELECT name,\n"
        "  num FROM fixture_echo;\n"
        ".mode json\n"
        "SELECT 'a;b' AS x; SELECT 2 AS y;\n"
        ".mode line\n"
        "SELECT name FROM fixture_echo;\n"
        ".mode csv\n"
        "SELECT name, num FROM fixture_echo;\n"
    )
    code, out, err = run_shell(core, text)
    assert (code, err) == (0, "")
    assert out == (
        "+------+-----+\n"
        "| name | num |\n"
        "+------+-----+\n"
        "| a    | 1   |\n"
        "+------+-----+\n"
        '[\n  {"x":"a;b"},\n  {"y":"2"}\n]\n'
        " name = a\n"
        "name,num\na,1\n"
    )


def test_errors_name_the_line_and_count(fixture_core):
    core, _, _ = fixture_core
    text = "SELECT 1 AS ok;\n\nSELECT *\nFROM nope;\n.bogus\n.mode xml\nSELECT 2 AS two;\n"
    code, out, err = run_shell(core, text)
    assert code == 1
    assert "| ok |" in out and "| two |" in out  # errors do not stop the input
    assert err.splitlines() == [
        "Error: near line 3: no such table: nope",
        'Error: unknown command or invalid arguments:  "bogus". Enter ".help" for help',
        "Error: mode should be one of: csv json line pretty",
    ]
    _, _, interactive_err = run_shell(core, "SELECT * FROM nope;\n", interactive=True)
    assert interactive_err == "Error: no such table: nope\n"


def test_extension_errors_and_warnings_reach_the_user(fixture_core):
    core, _, _ = fixture_core
    code, _, err = run_shell(core, "SELECT * FROM fixture_errors WHERE kind = 'audit';\n")
    assert code == 1
    assert err == "Error: near line 1: kernel audit is not available here\n"
    _, _, err = run_shell(core, "SELECT * FROM fixture_required;\n")
    assert err == "Error: near line 1: constraint failed\n"


def test_quit_help_and_incomplete_input(fixture_core):
    core, _, _ = fixture_core
    code, out, _ = run_shell(core, ".help\n.quit\nSELECT * FROM nope;\n")
    assert code == 0
    assert ".schema [TABLE]" in out and ".mode MODE" in out
    code, _, err = run_shell(core, "SELECT 1 AS one\n")
    assert code == 1
    assert err == "Error: incomplete SQL: SELECT 1 AS one\n"
    code, out, _ = run_shell(core, ".exit\n")
    assert (code, out) == (0, "")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "osquery_audit_ext", *args]


@pytest.mark.kernel
def test_shell_command_reads_sql_from_stdin():
    """`shell` with SQL piped in: the audit extension launched and queried as osquery would."""
    done = subprocess.run(
        _cli("shell"),
        input=".mode json\nSELECT name, type FROM osquery_extensions ORDER BY uuid;\n"
        "SELECT count(*) AS n FROM audit_status;\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    first, second = done.stdout.split("]\n")[:2]
    assert json.loads(first + "]") == [
        {"name": "core", "type": "core"},
        {"name": "osquery_audit_ext", "type": "extension"},
    ]
    assert json.loads(second + "]") == [{"n": "1"}]


@pytest.mark.kernel
def test_daemon_serves_queries_until_sigterm():
    with short_dir() as directory:
        socket_path = os.path.join(directory, "run", "osquery.em")
        daemon = subprocess.Popen(
            _cli("daemon", "--socket", socket_path, "--interval", "1"),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # The extension's own warnings (e.g. a locked audit configuration) may come first.
            lines: list[str] = []
            while len(lines) < 5 and not any("serving on" in line for line in lines):
                lines.append(daemon.stderr.readline())
            assert "serving on" in lines[-1], lines
            done = subprocess.run(
                _cli(
                    "query",
                    "--socket",
                    socket_path,
                    "--json",
                    "SELECT name FROM osquery_extensions",
                ),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == [{"name": "core"}, {"name": "osquery_audit_ext"}]
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            assert daemon.returncode == 0
            wait_until(lambda: not os.path.exists(socket_path), 5, "the socket to go")
            assert os.listdir(os.path.dirname(socket_path)) == []
        finally:
            end_process(daemon)


@pytest.mark.kernel
def test_shell_beside_an_instance_that_owns_the_state_dir(private_state_dir):
    """osqueryd's extension owns the state dir: the shell still opens, with its state in
    memory, and says so instead of failing."""
    with StateDir(private_state_dir):
        done = subprocess.run(
            _cli("shell", "SELECT state_dir FROM audit_status;"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert (
        f"Warning: the state dir {private_state_dir} belongs to a running instance "
        f"(pid {os.getpid()}): this shell keeps its state in memory" in done.stderr
    )
    assert "memory" in done.stdout and "Traceback" not in done.stderr
