"""The extension runtime's life cycle against a real core over Unix sockets."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers.harness import (
    CORE_PROGRAM,
    FixtureLog,
    end_process,
    fixture_command,
    running_core,
    short_dir,
    start_fixture,
    wait_until,
)

from osquery_audit_ext.commands import extension as extension_command
from osquery_audit_ext.core.sql import SQLError
from osquery_audit_ext.sdk.transport import connect


def registered(core, name: str = "fixture") -> int | None:
    entry = core.registry.find(name)
    return entry.uuid if entry else None


def test_missing_manager_socket_is_a_clear_nonzero_exit():
    with short_dir() as directory:
        log = FixtureLog(os.path.join(directory, "log"))
        process = start_fixture(os.path.join(directory, "missing.em"), log, "--timeout", "0.3")
        try:
            _out, err = process.communicate(timeout=20)
        finally:
            end_process(process)
        assert process.returncode == 1
        assert "no osquery extension manager on" in err and "missing.em" in err
        assert "Traceback" not in err
        assert log.exits() == 1


def test_unknown_arguments_do_not_break_startup():
    parser = argparse.ArgumentParser()
    extension_command.configure(parser)
    args, unknown = parser.parse_known_args(
        ["--socket", "/x.em", "--timeout", "3", "--interval", "3", "--verbose", "--flagfile", "f"]
    )
    assert (args.socket, args.timeout, args.interval, args.verbose) == ("/x.em", 3.0, 3.0, True)
    assert unknown == ["--flagfile", "f"]
    with running_core(timeout=3, interval=0.5) as (core, directory):
        log = FixtureLog(os.path.join(directory, "log"))
        process = core.launch(
            fixture_command("--extensions_require", "x", "--weird"), env=log.env()
        )
        core.wait_for_extension("fixture", 20, process=process)


def test_sigterm_deregisters_removes_socket_and_cleans_up_once():
    with running_core(timeout=3, interval=0.5) as (core, directory):
        log = FixtureLog(os.path.join(directory, "log"))
        process = start_fixture(core.socket_path, log, "--interval", "0.5")
        try:
            uuid = core.wait_for_extension("fixture", 20, process=process)
            ext_socket = f"{core.socket_path}.{uuid}"
            assert os.path.exists(ext_socket)
            process.send_signal(signal.SIGTERM)
            _out, err = process.communicate(timeout=20)
        finally:
            end_process(process)
        assert process.returncode == 0, err
        assert registered(core) is None  # deregistered at once, not after a failed ping
        assert not os.path.exists(ext_socket)
        assert log.exits() == 1


def test_extension_exits_when_core_dies():
    with short_dir() as directory:
        socket_path = os.path.join(directory, "em")
        core = subprocess.Popen(
            [sys.executable, CORE_PROGRAM, socket_path, "30"],
            stdout=subprocess.PIPE,
            text=True,
        )
        log = FixtureLog(os.path.join(directory, "log"))
        extension = None
        try:
            assert core.stdout.readline().strip() == "ready"
            extension = start_fixture(socket_path, log, "--interval", "0.3")
            wait_until(
                lambda: any(name.startswith("em.") for name in os.listdir(directory)),
                20,
                "the extension's socket",
            )
            core.send_signal(signal.SIGKILL)  # a crashed osqueryd: its socket file stays
            core.wait(timeout=10)
            _out, err = extension.communicate(timeout=20)
            assert extension.returncode == 0, err
            assert log.exits() == 1
            assert not [n for n in os.listdir(directory) if n.startswith("em.")]
        finally:
            end_process(core)
            if extension is not None:
                end_process(extension)


def test_core_drops_a_silent_extension_which_then_exits():
    with running_core(timeout=1, interval=0.3, ping_timeout=1.0) as (core, directory):
        log = FixtureLog(os.path.join(directory, "log"))
        process = start_fixture(core.socket_path, log, "--interval", "0.3")
        try:
            uuid = core.wait_for_extension("fixture", 20, process=process)
            process.send_signal(signal.SIGSTOP)  # alive but silent: pings time out
            wait_until(lambda: registered(core) is None, 15, "core to drop the extension")
            with pytest.raises(SQLError, match="no such table: fixture_echo"):
                core.query("SELECT * FROM fixture_echo")
            process.send_signal(signal.SIGCONT)
            _out, err = process.communicate(timeout=20)
        finally:
            end_process(process)
        assert process.returncode == 1
        assert f"extension uuid {uuid} is no longer registered" in err
        assert log.exits() == 1


def test_long_generate_does_not_block_pings():
    with running_core(timeout=3, interval=0.3, ping_timeout=1.0) as (core, directory):
        log = FixtureLog(os.path.join(directory, "log"))
        process = start_fixture(core.socket_path, log, "--interval", "0.3", FIXTURE_SLOW="3")
        try:
            uuid = core.wait_for_extension("fixture", 20, process=process)
            outcome: list[object] = []

            def slow_query() -> None:
                outcome.append(core.query("SELECT note FROM fixture_errors WHERE kind = 'slow'"))

            worker = threading.Thread(target=slow_query)
            worker.start()
            time.sleep(0.5)  # the generate is now sleeping inside the extension
            started = time.monotonic()
            with connect(f"{core.socket_path}.{uuid}", timeout=1.0) as client:
                pong = client.ping()
            assert pong.code == 0 and time.monotonic() - started < 0.5
            worker.join(timeout=20)
            assert outcome and outcome[0].rows == [{"note": "done"}]
            assert registered(core) == uuid  # several health pings passed meanwhile
        finally:
            end_process(process)


def test_duplicate_names_and_tables_are_refused():
    with running_core(timeout=3, interval=0.5) as (core, directory):
        log = FixtureLog(os.path.join(directory, "log"))
        first = start_fixture(core.socket_path, log)
        try:
            core.wait_for_extension("fixture", 20, process=first)
            same_name = start_fixture(core.socket_path, log)
            _out, err = same_name.communicate(timeout=20)
            assert same_name.returncode == 1
            assert "osquery core refused the extension: Duplicate extension registered" in err
            same_tables = start_fixture(core.socket_path, log, name="other")
            _out, err = same_tables.communicate(timeout=20)
            assert same_tables.returncode == 1
            assert "Duplicate registry item exists: fixture_" in err
            assert log.exits() == 2
        finally:
            end_process(first)


def test_core_stop_ends_launched_processes_by_signal():
    with short_dir() as directory:
        from osquery_audit_ext.core.manager import EmbeddedCore

        core = EmbeddedCore(os.path.join(directory, "em"), timeout=3, interval=0.5)
        core.start()
        log = FixtureLog(os.path.join(directory, "log"))
        stubborn = core.launch(
            [
                sys.executable,
                "-c",
                "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                "sys.stdout.write(' '.join(sys.argv[1:])); time.sleep(120)",
            ]
        )
        polite = core.launch(fixture_command(), env=log.env())
        try:
            core.wait_for_extension("fixture", 20, process=polite)
            core.stop()
            assert polite.returncode == 0  # asked to shut down over Thrift
            assert stubborn.returncode == -signal.SIGKILL  # ignored SIGTERM
            assert log.exits() == 1
            assert os.listdir(directory) == ["log"]  # every socket file removed
        finally:
            end_process(stubborn)
            end_process(polite)


def test_respawned_extension_registers_again():
    with running_core(timeout=3, interval=0.3) as (core, directory):
        log = FixtureLog(os.path.join(directory, "log"))
        first = core.launch(fixture_command(), env=log.env(), respawn=True)
        try:
            old = core.wait_for_extension("fixture", 20, process=first)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            wait_until(lambda: registered(core) not in (None, old), 30, "the restarted extension")
            assert len([e for e in log.events() if "argv" in e]) == 2
        finally:
            end_process(first)
