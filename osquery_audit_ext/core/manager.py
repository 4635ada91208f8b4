"""The embedded osquery-compatible core: an ExtensionManager on a Unix socket.

It does what osqueryi/osqueryd do for extensions: serves ExtensionManager (ping,
extensions, options, registerExtension, deregisterExtension, query, getQueryColumns),
launches extension programs with `--socket S --timeout T --interval I [--verbose]`,
health-pings each registered extension every interval over a new connection (one failed
ping drops it), and answers SQL over every registered table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from .. import __version__
from ..errors import AuditExtError
from ..sdk.osquery_thrift import ExtensionManager
from ..sdk.osquery_thrift.ttypes import (
    ExtensionResponse,
    ExtensionStatus,
    InternalExtensionInfo,
    InternalOptionInfo,
)
from ..sdk.plugin import Table, failure_response, ok_status
from ..sdk.result import QueryResult, ScannedResult
from ..sdk.transport import ThriftConnectError, UnixThriftServer, connect, remove_stale_socket
from .answer import QueryProcessor
from .builtin import OsqueryExtensionsTable, TimeTable
from .registry import ExtensionRegistry
from .sources import LocalTableSource
from .sql import SQLEngine, SQLError, Statements, TableSource

log = logging.getLogger(__name__)


class CoreError(AuditExtError):
    """The embedded core cannot start, or an extension it waits for never comes up."""


def _flag_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


@dataclass(eq=False)
class _Launched:
    argv: list[str]
    env: Mapping[str, str] | None
    respawn: bool
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)


class ManagerHandler(ExtensionManager.Iface):
    """The Thrift face of the core; never raises."""

    def __init__(self, core: EmbeddedCore) -> None:
        self.core = core

    def ping(self) -> ExtensionStatus:
        return ExtensionStatus(code=0, message="pong", uuid=0)

    def shutdown(self) -> None:
        log.info("shutdown requested over the extension manager socket")
        self.core.shutdown_requested.set()

    def call(self, registry: str, item: str, request: Mapping[str, str]) -> ExtensionResponse:
        if registry != "table":
            return failure_response(f"Unknown registry: {registry}")
        source = self.core.table_sources().get(item)
        if source is None:
            return failure_response(f"Registry item {item} does not exist")
        return source.call(dict(request or {}))

    def extensions(self) -> dict[int, InternalExtensionInfo]:
        return self.core.extensions()

    def options(self) -> dict[str, InternalOptionInfo]:
        return self.core.options()

    def registerExtension(
        self, info: InternalExtensionInfo, registry: Mapping[str, Mapping[str, list]]
    ) -> ExtensionStatus:
        if info is None or not info.name:
            return ExtensionStatus(code=1, message="Extension name is required")
        return self.core.registry.register(info, registry)

    def deregisterExtension(self, uuid: int) -> ExtensionStatus:
        return self.core.registry.deregister(uuid)

    def query(self, sql: str) -> ExtensionResponse:
        answer = self.query_answer(sql)
        return answer if isinstance(answer, ExtensionResponse) else self.respond(answer)

    def query_answer(self, sql: str) -> Statements | ExtensionResponse:
        """query's result before its rows become dicts (QueryProcessor encodes the tuples
        itself), or its failure response."""
        return _answered("query", lambda: self.core.query_statements(sql or ""))

    def respond(self, statements: Statements) -> ExtensionResponse:
        """query's response: status OK and the rows as {column: text}."""
        return _answered(
            "query", lambda: ExtensionResponse(status=ok_status(), response=statements.rows())
        )

    def getQueryColumns(self, sql: str) -> ExtensionResponse:
        def columns() -> ExtensionResponse:
            rows = [{name: ctype} for name, ctype in self.core.query_columns(sql or "")]
            return ExtensionResponse(status=ok_status(), response=rows)

        return _answered("getQueryColumns", columns)


_T = TypeVar("_T")


def _answered(call: str, answer: Callable[[], _T]) -> _T | ExtensionResponse:
    """answer(), or a failure response: a SQL error's message, or (a bug must not kill the
    connection thread silently) any other exception's, logged."""
    try:
        return answer()
    except SQLError as exc:
        return failure_response(str(exc))
    except Exception as exc:
        log.error("%s failed", call, exc_info=True)
        return failure_response(f"{type(exc).__name__}: {exc}")


class EmbeddedCore:
    """An osquery-compatible extension manager and SQL engine in this process."""

    def __init__(
        self,
        socket_path: str,
        *,
        timeout: float = 3.0,
        interval: float = 3.0,
        verbose: bool = False,
        ping_timeout: float = 10.0,
        call_timeout: float = 300.0,
        default_index: bool = True,
        options: Mapping[str, str] | None = None,
        builtin_tables: bool = True,
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.interval = interval
        self.verbose = verbose
        self.ping_timeout = ping_timeout
        self.call_timeout = call_timeout
        self.default_index = default_index
        self._extra_options = dict(options or {})
        self.shutdown_requested = threading.Event()
        self._local: dict[str, LocalTableSource] = {}
        if builtin_tables:
            self.add_table(OsqueryExtensionsTable(socket_path, __version__, self.extensions))
            self.add_table(TimeTable())
        self.registry = ExtensionRegistry(lambda: set(self._local))
        self.engine = SQLEngine(self.table_sources, default_index=default_index)
        self._server = UnixThriftServer(
            socket_path, QueryProcessor(ManagerHandler(self)), name="core"
        )
        self._launched: list[_Launched] = []
        self._launch_lock = threading.Lock()
        self._healthy: set[int] = set()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        parent = os.path.dirname(self.socket_path)
        if parent and not os.path.isdir(parent):
            raise CoreError(f"directory {parent} for the extension manager socket does not exist")
        self._remove_stale_extension_sockets()
        self._server.start()
        self._started = True
        self._watcher = threading.Thread(target=self._watch, name="core-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Ask extensions to shut down, end the processes we launched, stop serving."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.ping_timeout + self.timeout + 5)
        for entry in self.registry.snapshot():
            with contextlib.suppress(ThriftConnectError):
                with connect(self._extension_socket(entry.uuid), 1.0) as client:
                    client.shutdown()
        with self._launch_lock:
            launched, self._launched = self._launched, []
        for item in launched:
            _end_process(item.process)
        self._server.stop()

    def __enter__(self) -> EmbeddedCore:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- extensions ---------------------------------------------------------------------
    def launch(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        respawn: bool = False,
    ) -> subprocess.Popen:
        """Start an extension program exactly as osquery autoloads one."""
        command = [
            *argv,
            "--socket",
            self.socket_path,
            "--timeout",
            _flag_text(self.timeout),
            "--interval",
            _flag_text(self.interval),
        ]
        if self.verbose:
            command.append("--verbose")
        try:
            process = subprocess.Popen(
                command,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C goes to the shell, not to it
            )
        except OSError as exc:
            raise CoreError(f"cannot start extension {argv[0]}: {exc.strerror}") from None
        with self._launch_lock:
            self._launched.append(_Launched(list(argv), env, respawn, process))
        return process

    def wait_for_extension(
        self, name: str, timeout: float, *, process: subprocess.Popen | None = None
    ) -> int:
        """Block until an extension called `name` is registered and answers a ping."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.registry.find(name)
            if entry is not None and self._ping(entry.uuid):
                return entry.uuid
            if process is not None and process.poll() is not None:
                raise CoreError(
                    f"extension {name} exited with status {process.returncode} before registering"
                )
            if time.monotonic() >= deadline:
                raise CoreError(f"extension {name} did not register within {timeout:g} s")
            time.sleep(0.02)

    def extensions(self) -> dict[int, InternalExtensionInfo]:
        return {entry.uuid: entry.info for entry in self.registry.snapshot()}

    def options(self) -> dict[str, InternalOptionInfo]:
        values = {
            "extensions_socket": (self.socket_path, "/var/osquery/osquery.em", "string"),
            "extensions_timeout": (_flag_text(self.timeout), "3", "string"),
            "extensions_interval": (_flag_text(self.interval), "3", "string"),
            "extensions_default_index": (str(self.default_index).lower(), "true", "bool"),
            "verbose": (str(self.verbose).lower(), "false", "bool"),
            "config_plugin": ("filesystem", "filesystem", "string"),
            "logger_plugin": ("filesystem", "filesystem", "string"),
            "distributed_plugin": ("tls", "tls", "string"),
            "disable_events": ("false", "false", "bool"),
            "events_expiry": ("3600", "3600", "uint64"),
            "events_max": ("50000", "50000", "uint64"),
        }
        options = {
            name: InternalOptionInfo(value=v, default_value=d, type=t)
            for name, (v, d, t) in values.items()
        }
        for name, value in self._extra_options.items():
            known = options.get(name)
            options[name] = InternalOptionInfo(
                value=value,
                default_value=known.default_value if known else "",
                type=known.type if known else "string",
            )
        return options

    # -- tables and SQL -----------------------------------------------------------------
    def add_table(self, table: Table) -> None:
        """Serve a table from inside the core (as osquery's built-in tables are)."""
        self._local[table.name] = LocalTableSource(table)

    def table_sources(self) -> dict[str, TableSource]:
        sources: dict[str, TableSource] = dict(self._local)
        sources.update(self.registry.table_sources(self.socket_path, self.call_timeout))
        return sources

    def table_names(self) -> list[str]:
        return sorted(self.table_sources())

    def table_schema(self, name: str) -> str:
        """What osqueryi's `.schema TABLE` prints for one table."""
        source = self.table_sources().get(name)
        if source is None:
            raise CoreError(f"no such table: {name}")
        return source.definition.create_statement(is_extension=False) + ";"

    def query(self, sql: str) -> QueryResult:
        return self.engine.query(sql)

    def query_scanned(self, sql: str) -> ScannedResult:
        return self.engine.query_scanned(sql)

    def query_statements(self, sql: str) -> Statements:
        return self.engine.query_statements(sql)

    def query_columns(self, sql: str) -> list[tuple[str, str]]:
        return self.engine.query_columns(sql)

    # -- health -------------------------------------------------------------------------
    def _extension_socket(self, uuid: int) -> str:
        return f"{self.socket_path}.{uuid}"

    def _ping(self, uuid: int) -> bool:
        try:
            with connect(self._extension_socket(uuid), self.ping_timeout) as client:
                status = client.ping()
        except ThriftConnectError:
            return False
        return status is not None and status.code == 0

    def _watch(self) -> None:
        interval = max(self.interval, 0.2)
        while not self._stopping.wait(interval):
            self._check_extensions()
            self._supervise()

    def _check_extensions(self) -> None:
        for entry in self.registry.snapshot():
            if self._stopping.is_set():
                return
            path = self._extension_socket(entry.uuid)
            if entry.uuid not in self._healthy and not os.path.exists(path):
                # A new extension may be latent: allow it the autoload timeout.
                deadline = time.monotonic() + self.timeout
                while not os.path.exists(path) and time.monotonic() < deadline:
                    if self._stopping.wait(0.02):
                        return
            if self._ping(entry.uuid):
                self._healthy.add(entry.uuid)
                continue
            log.info("Extension UUID %d has gone away", entry.uuid)
            self.registry.remove(entry.uuid)
            self._healthy.discard(entry.uuid)

    def _supervise(self) -> None:
        """Restart launched extensions that asked for it, as osquery's watcher does."""
        with self._launch_lock:
            items = list(self._launched)
        for item in items:
            code = item.process.poll()
            if code is None or not item.respawn or self._stopping.is_set():
                continue
            if time.monotonic() - item.started < max(self.interval, 1.0):
                continue
            log.warning("extension %s exited with status %d; restarting it", item.argv[0], code)
            with self._launch_lock:
                if item in self._launched:
                    self._launched.remove(item)
            with contextlib.suppress(CoreError):
                self.launch(item.argv, env=item.env, respawn=True)

    def _remove_stale_extension_sockets(self) -> None:
        """Before serving, drop `<socket>.<uuid>` files nobody answers (osquery does too)."""
        directory = os.path.dirname(self.socket_path) or "."
        prefix = os.path.basename(self.socket_path) + "."
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(directory):
                if entry.name.startswith(prefix) and entry.name[len(prefix) :].isdigit():
                    with contextlib.suppress(ThriftConnectError):
                        remove_stale_socket(entry.path)


def _end_process(process: subprocess.Popen, grace: float = 3.0) -> None:
    """Wait briefly for a clean exit, then SIGTERM, then SIGKILL, always by pid."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1.0)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        process.wait()
