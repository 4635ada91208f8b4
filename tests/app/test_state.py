"""The state directory: created root-only, one owner at a time, documents replaced atomically."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from osquery_audit_ext.app.settings import settings_from_dict
from osquery_audit_ext.app.state import (
    DEFAULT_STATE_DIR,
    STATE_DIR_ENV,
    StateDir,
    StateSettings,
)
from osquery_audit_ext.errors import ConfigError, StateError


def test_created_root_only_and_documents_round_trip(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "state"
    with StateDir(directory) as state:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert state.load("cursors") is None
        state.save("cursors", {"process_events": {"siem": 41}})
        state.save("cursors", {"process_events": {"siem": 42}})
        assert state.load("cursors") == {"process_events": {"siem": 42}}
        assert stat.S_IMODE((directory / "cursors.json").stat().st_mode) == 0o600
        assert sorted(p.name for p in directory.iterdir()) == ["cursors.json", "lock"]
        state.remove("cursors")
        state.remove("cursors")  # absent: nothing to do
        assert state.load("cursors") is None
    with StateDir(directory) as again:  # the lock was released on close
        assert again.load("cursors") is None


def test_a_second_instance_is_refused_with_the_owner(tmp_path: Path) -> None:
    with StateDir(tmp_path):
        with pytest.raises(
            StateError, match=rf"in use by another running instance \(pid {os.getpid()}\)"
        ):
            StateDir(tmp_path).open()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    """kill -9 of the owner frees the directory for its respawn at once."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from osquery_audit_ext.app.state import StateDir;"
            f"StateDir({str(tmp_path)!r}).open(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateError, match=f"pid {holder.pid}"):
            StateDir(tmp_path).open()
    finally:
        holder.kill()
        holder.wait()
    with StateDir(tmp_path):
        pass


def test_corrupt_document_is_moved_aside_and_counted(tmp_path: Path) -> None:
    with StateDir(tmp_path) as state:
        (tmp_path / "eids.json").write_text('{"process_events": 1', encoding="utf-8")
        assert state.load("eids") is None
        assert state.corrupt == 1
        assert (tmp_path / "eids.json.corrupt").exists()
        assert not (tmp_path / "eids.json").exists()


def test_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(StateError, match=f"state dir {blocker}/sub: Not a directory"):
        StateDir(blocker / "sub").open()


def test_failed_write_keeps_the_old_document(tmp_path: Path) -> None:
    with StateDir(tmp_path) as state:
        state.save("eids", {"socket_events": 7})
        with pytest.raises(TypeError):
            state.save("eids", {"socket_events": object()})
        assert state.load("eids") == {"socket_events": 7}
        assert json.loads((tmp_path / "eids.json").read_text(encoding="utf-8")) == {
            "socket_events": 7
        }
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_memory_only_keeps_copies_and_needs_no_disk() -> None:
    state = StateDir(None).open()
    document = {"a": [1]}
    state.save("x", document)
    document["a"].append(2)
    assert state.load("x") == {"a": [1]}
    assert state.describe.startswith("memory")
    state.close()


def test_settings_choose_the_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert settings_from_dict({"state": {"dir": "/srv/oae"}}).state.directory() == "/srv/oae"
    assert settings_from_dict({"state": {"dir": "-"}}).state.directory() is None
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    assert StateSettings().directory() == str(tmp_path)
    monkeypatch.delenv(STATE_DIR_ENV)
    assert StateSettings().directory() == DEFAULT_STATE_DIR
    with pytest.raises(ConfigError, match="state: unknown key 'path'"):
        settings_from_dict({"state": {"path": "/x"}})
    with pytest.raises(ConfigError, match=r"state\.dir: expected a string"):
        settings_from_dict({"state": {"dir": 3}})
