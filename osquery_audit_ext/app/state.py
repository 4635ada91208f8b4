"""The state directory: what must outlive one run of the extension, written so a crash never
leaves half a file.

Other parts keep their own documents here (consumer cursors and eid high-water marks, the
kernel settings found before we changed them, the durable ring); this module only knows how
to hold the directory, read a document and replace one atomically (write a temporary file,
fsync, rename over the old one, fsync the directory), as auditd and osquery's RocksDB do.

One running instance owns a directory at a time: it holds an flock on `lock` inside it,
which the kernel releases when the process dies, so a respawn after kill -9 takes it over
at once and a second concurrent instance gets a clear error instead of clobbering files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StateError

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/osquery-audit-ext"
# Overrides the default (not a dir set in the config): lets the test suite, and anyone
# running a second instance by hand, keep away from the production directory.
STATE_DIR_ENV = "OSQUERY_AUDIT_EXT_STATE_DIR"
LOCK_NAME = "lock"
_SUFFIX = ".json"


def default_state_dir() -> str:
    return os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR


@dataclass(frozen=True)
class StateSettings:
    """[state]: where what outlives a run is kept."""

    # "" = the default (STATE_DIR_ENV, else DEFAULT_STATE_DIR); "-" = memory only, so
    # nothing survives a restart (for throwaway runs; audit_status shows it).
    dir: str = ""
    ring: bool = True  # keep the rings' events in segment files (the durable ring)
    flush: str = "none"  # none | incremental_async | data (events/journal.py)
    freq: int = 50  # incremental_async: events between two fdatasync calls

    def directory(self) -> str | None:
        """The directory to open, or None for memory only ("-", here or in the env var)."""
        path = self.dir or default_state_dir()
        return None if path == "-" else path


class StateDir:
    """An opened (created, locked) state directory, or memory only when `path` is None."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = None if path is None else Path(path)
        self.corrupt = 0  # documents found unreadable and moved aside
        self._lock_fd: int | None = None
        self._memory: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> StateDir:
        """Create the directory root-only (0700) if missing and take its lock."""
        if self.path is None:
            return self
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.is_dir():
                raise StateError(f"state dir {self.path}: not a directory")
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except StateError:
            raise
        except OSError as exc:
            raise StateError(f"state dir {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                owner = _read_owner(self.path / LOCK_NAME)
                raise StateError(
                    f"state dir {self.path} is in use by another running instance"
                    f"{f' (pid {owner})' if owner else ''}; give this one its own [state] dir"
                ) from None
            raise StateError(f"state dir {self.path}: cannot lock: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return self

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> StateDir:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def describe(self) -> str:
        return "memory (nothing survives a restart)" if self.path is None else str(self.path)

    # -- documents --------------------------------------------------------------------------

    def load(self, name: str) -> Any | None:
        """The document saved as `name`, or None when there is none.

        A document that cannot be parsed (a disk that lied about fsync, a hand edit) is moved
        aside as NAME.json.corrupt, counted and logged: starting fresh beats not starting.
        """
        if self.path is None:
            return self._memory.get(name)
        file = self.path / f"{name}{_SUFFIX}"
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {file}: {exc.strerror or exc}") from None
        try:
            return json.loads(text)
        except ValueError as exc:
            self.corrupt += 1
            aside = file.with_name(file.name + ".corrupt")
            log.error("state file %s is corrupt (%s); moved to %s", file, exc, aside)
            os.replace(file, aside)
            return None

    def save(self, name: str, document: Any) -> None:
        """Replace document `name` atomically: a crash leaves the old one or the new one."""
        if self.path is None:
            self._memory[name] = json.loads(json.dumps(document))
            return
        self.write_bytes(f"{name}{_SUFFIX}", json.dumps(document, sort_keys=True).encode())

    def remove(self, name: str) -> None:
        if self.path is None:
            self._memory.pop(name, None)
            return
        try:
            (self.path / f"{name}{_SUFFIX}").unlink()
        except FileNotFoundError:
            return
        self._sync_dir()

    def write_bytes(self, filename: str, data: bytes) -> None:
        """Atomically replace `filename` in the directory with `data` (write, fsync, rename)."""
        assert self.path is not None, "memory-only state has no files"
        target = self.path / filename
        temporary = target.with_name(f".{filename}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, target)
        except OSError as exc:
            try:
                temporary.unlink()
            except OSError:
                pass
            raise StateError(f"cannot write {target}: {exc.strerror or exc}") from None
        self._sync_dir()

    def _sync_dir(self) -> None:
        assert self.path is not None
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def state_owner(path: str | os.PathLike[str]) -> str | None:
    """The pid (as written) of the live instance that owns the state dir at `path`, or None
    when no instance holds it (or it does not exist). Takes the lock only for a moment."""
    lock_file = Path(path) / LOCK_NAME
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return _read_owner(lock_file) or "?"
        return None
    finally:
        os.close(fd)  # releases the lock if we got it
    return None


def _read_owner(lock_file: Path) -> str:
    try:
        return lock_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
