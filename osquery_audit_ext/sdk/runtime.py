"""Run tables as an osquery extension: wait for core, register, serve, watch, clean up.

Fixes what osquery-python gets wrong: a missing manager socket is a clear non-zero exit
(not a silent return), the server is threaded (a long generate never blocks core's
health ping), and the extension notices when core is gone *or* has dropped its uuid.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Callable

from .answer import CallProcessor
from .osquery_thrift.ttypes import InternalExtensionInfo
from .plugin import ExtensionHandler, Table
from .transport import ThriftConnectError, UnixThriftServer, connect

log = logging.getLogger(__name__)

SDK_VERSION = "5.0.0"
MIN_SDK_VERSION = "1.8.0"
# Manager calls made by the watcher get the same 10 s bound core gives its pings.
CALL_TIMEOUT = 10.0

EXIT_OK = 0
EXIT_FAILED = 1


def _say(message: str) -> None:
    print(f"osquery-audit-ext: {message}", file=sys.stderr, flush=True)


def wait_for_manager(
    socket_path: str, timeout: float, cancel: threading.Event | None = None
) -> bool:
    """Poll until the manager socket exists and answers a ping, for up to `timeout` s."""
    deadline = time.monotonic() + max(timeout, 0.2)
    while cancel is None or not cancel.is_set():
        if os.path.exists(socket_path):
            try:
                with connect(socket_path, CALL_TIMEOUT) as client:
                    client.ping()
                return True
            except ThriftConnectError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return False


class _Exit:
    """The first reason to stop wins; the main loop waits on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.code = EXIT_OK
        self.reason = ""

    def request(self, code: int, reason: str) -> None:
        if not self.event.is_set():
            self.code, self.reason = code, reason
            self.event.set()


def _manager_verdict(socket_path: str, uuid: int) -> tuple[int, str] | None:
    """None while core is healthy and lists us; else (exit code, reason) as osquery decides."""
    if not os.path.exists(socket_path):
        return EXIT_OK, "osquery core has gone away (manager socket removed)"
    try:
        with connect(socket_path, CALL_TIMEOUT) as client:
            listed = client.extensions()
    except ThriftConnectError as exc:
        return EXIT_OK, f"osquery core has gone away ({exc})"
    if uuid not in (listed or {}):
        return EXIT_FAILED, f"extension uuid {uuid} is no longer registered with osquery core"
    return None


@contextlib.contextmanager
def _signals_to(stop: _Exit):
    """SIGTERM/SIGINT end the extension cleanly (only settable from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        stop.request(EXIT_OK, f"received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_extension(
    name: str,
    version: str,
    tables: Sequence[Table],
    *,
    socket_path: str,
    timeout: float,
    interval: float,
    verbose: bool = False,
    on_exit: Callable[[], None] | None = None,
) -> int:
    """Serve `tables` to the osquery core at `socket_path` until it goes away; the exit code.

    `on_exit` runs exactly once, whatever the way out.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        return _serve(name, version, tables, socket_path, timeout, interval)
    finally:
        if on_exit is not None:
            # A core that stops sends SIGTERM soon after its shutdown call (osquery's does
            # too): the cleanup that puts the kernel back must not die half-way through.
            with _signals_to(_Exit()):
                try:
                    on_exit()
                except Exception:
                    log.error("cleanup after the extension failed", exc_info=True)


def _serve(
    name: str,
    version: str,
    tables: Sequence[Table],
    socket_path: str,
    timeout: float,
    interval: float,
) -> int:
    stop = _Exit()
    with _signals_to(stop):
        if not wait_for_manager(socket_path, timeout, stop.event):
            if stop.event.is_set():
                return stop.code
            _say(f"no osquery extension manager on {socket_path} after {timeout:g} s")
            return EXIT_FAILED
        handler = ExtensionHandler(
            tables, on_shutdown=lambda: stop.request(EXIT_OK, "core requested shutdown")
        )
        info = InternalExtensionInfo(
            name=name, version=version, sdk_version=SDK_VERSION, min_sdk_version=MIN_SDK_VERSION
        )
        try:
            with connect(socket_path, CALL_TIMEOUT) as client:
                status = client.registerExtension(info, handler.registry())
        except ThriftConnectError as exc:
            _say(f"cannot register with osquery core: {exc}")
            return EXIT_FAILED
        if status is None or status.code != 0:
            _say(f"osquery core refused the extension: {status.message if status else 'no status'}")
            return EXIT_FAILED
        handler.uuid = status.uuid
        server = UnixThriftServer(f"{socket_path}.{status.uuid}", CallProcessor(handler), name=name)
        try:
            server.start()
        except ThriftConnectError as exc:
            _deregister(socket_path, status.uuid)
            _say(str(exc))
            return EXIT_FAILED
        log.info("extension %s registered as uuid %d", name, status.uuid)
        try:
            period = max(interval, 0.2)
            while not stop.event.wait(period):
                verdict = _manager_verdict(socket_path, status.uuid)
                if verdict is not None:
                    stop.request(*verdict)
        finally:
            server.stop()
        log.info("extension %s stopping: %s", name, stop.reason)
        if stop.code == EXIT_FAILED:
            _say(stop.reason)
        elif stop.reason.startswith("received"):
            _deregister(socket_path, status.uuid)
        return stop.code


def _deregister(socket_path: str, uuid: int) -> None:
    with contextlib.suppress(ThriftConnectError):
        with connect(socket_path, 1.0) as client:
            client.deregisterExtension(uuid)
