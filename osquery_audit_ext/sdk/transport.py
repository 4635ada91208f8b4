"""Thrift over Unix sockets, as osquery speaks it: binary protocol, buffered transport.

Both ends use thrift's C-accelerated binary protocol (fastbinary) when thrift's C extension
is installed, and thrift's pure-Python one otherwise (e.g. inside the .ext zipapp): the
bytes on the wire are the same (tests/sdk/test_thrift_wire.py). Shared by the embedded core, the extension runtime and the query client. Clients open a
new connection per call (as osquery core does); the server gives every connection its own
thread, so a long `generate` never holds up a health ping.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Any

from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.Thrift import TApplicationException, TException, TMessageType
from thrift.transport import TSocket, TTransport

from ..errors import AuditExtError
from .osquery_thrift import ExtensionManager

log = logging.getLogger(__name__)

# thrift logs every failed connect at ERROR; callers here report failures themselves.
logging.getLogger("thrift").addHandler(logging.NullHandler())
logging.getLogger("thrift").propagate = False

SUN_PATH_MAX = 107


def binary_protocol(transport: TTransport.TTransportBase) -> TBinaryProtocolAccelerated:
    """osquery's binary protocol on `transport`; in C when fastbinary imports, else Python."""
    return TBinaryProtocolAccelerated(transport, fallback=True)


def accelerated() -> bool:
    """Whether Thrift messages are encoded and decoded by thrift's C extension here."""
    return getattr(binary_protocol(TTransport.TMemoryBuffer()), "_fast_encode", None) is not None


def read_reply(protocol: Any, decode: Callable[[Callable[[int], bytes]], Any]) -> Any:
    """What a generated client's recv_<call> does, with `decode(read)` reading the result
    struct off the transport as it arrives (read(n) gives the transport's buffered bytes,
    then the socket's) instead of thrift's decoder: the compiled readers of large replies
    (core/_sqlfast.c reply_rows, sdk/_thriftfast.c text_reply). decode gives None when the
    reply holds no result: thrift's "unknown result"."""
    _name, kind, _seqid = protocol.readMessageBegin()
    if kind == TMessageType.EXCEPTION:
        error = TApplicationException()
        error.read(protocol)
        protocol.readMessageEnd()
        raise error
    decoded = decode(protocol.trans.read)
    protocol.readMessageEnd()
    if decoded is None:
        raise TApplicationException(
            TApplicationException.MISSING_RESULT, "call failed: unknown result"
        )
    return decoded


class UnixSocket(TSocket.TSocket):
    """thrift's TSocket, writing each buffer with one sendall().

    TSocket.write re-slices the unsent rest of the buffer after every partial send(): on a
    socket with a timeout (non-blocking underneath, ~200 KiB a send on Linux), or a blocking
    one whose send a signal interrupts (as py-spy's sampling does), an 80 MB reply is
    copied hundreds of times. sendall() walks the same buffer without copying it.
    """

    def write(self, buff: bytes) -> None:
        if not self.handle:
            raise TTransport.TTransportException(
                type=TTransport.TTransportException.NOT_OPEN, message="Transport not open"
            )
        try:
            self.handle.sendall(buff)
        except OSError as exc:
            raise TTransport.TTransportException(
                message="unexpected exception", inner=exc
            ) from None


class ThriftConnectError(AuditExtError):
    """An osquery extension or manager socket cannot be reached or broke mid-call."""


def describe_connect_error(path: str, exc: BaseException) -> str:
    """One line naming the socket and what went wrong with it."""
    if isinstance(exc, FileNotFoundError):
        return f"socket {path} does not exist"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused on {path} (nothing is serving that socket)"
    if isinstance(exc, PermissionError):
        return f"permission denied on {path}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out talking to {path}"
    if isinstance(exc, TTransport.TTransportException):
        inner = getattr(exc, "inner", None)
        if isinstance(inner, BaseException):
            return describe_connect_error(path, inner)
        if exc.type == TTransport.TTransportException.TIMED_OUT:
            return f"timed out talking to {path}"
        if exc.type == TTransport.TTransportException.END_OF_FILE:
            return f"{path} closed the connection"
    return f"{path}: {exc}"


@contextlib.contextmanager
def connect(path: str, timeout: float | None = None) -> Iterator[Any]:
    """A fresh ExtensionManager client (a superset of Extension) on a Unix socket.

    Transport and socket failures inside the block become ThriftConnectError.
    """
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ThriftConnectError(f"socket path longer than {SUN_PATH_MAX} bytes: {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ThriftConnectError(describe_connect_error(path, exc)) from None
    handle = UnixSocket(unix_socket=path)
    handle.setHandle(sock)
    transport = TTransport.TBufferedTransport(handle)
    client = ExtensionManager.Client(binary_protocol(transport))
    try:
        yield client
    except (OSError, TException) as exc:
        raise ThriftConnectError(describe_connect_error(path, exc)) from None
    finally:
        transport.close()


def socket_is_live(path: str) -> bool:
    """Whether something accepts connections on this Unix socket."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def remove_stale_socket(path: str) -> None:
    """Remove a socket file nobody serves; refuse to touch a live socket or a non-socket."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ThriftConnectError(f"{path} exists and is not a socket")
    if socket_is_live(path):
        raise ThriftConnectError(f"{path} is already served by another process")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class UnixThriftServer:
    """A Thrift processor on a Unix socket, one thread per connection."""

    def __init__(self, path: str, processor: Any, *, name: str = "thrift") -> None:
        self.path = path
        self.processor = processor
        self.name = name
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if len(os.fsencode(self.path)) > SUN_PATH_MAX:
            raise ThriftConnectError(f"socket path longer than {SUN_PATH_MAX} bytes: {self.path}")
        remove_stale_socket(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(128)
        except OSError as exc:
            listener.close()
            raise ThriftConnectError(f"cannot serve on {self.path}: {exc.strerror}") from None
        self._inode = os.lstat(self.path).st_ino
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept", daemon=True
        )
        self._accept_thread.start()

    def stop(self) -> None:
        """Stop accepting, drop open connections and remove our socket file."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            clients = list(self._clients)
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if (
            self._accept_thread is not None
            and self._accept_thread is not threading.current_thread()
        ):
            self._accept_thread.join(timeout=5)
        self._remove_own_socket()

    def _remove_own_socket(self) -> None:
        try:
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                if self._stopping.is_set() or exc.errno in (errno.EBADF, errno.EINVAL):
                    return
                log.warning("%s: accept failed on %s: %s", self.name, self.path, exc)
                continue
            with self._lock:
                self._clients.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name=f"{self.name}-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        handle = UnixSocket()
        handle.setHandle(conn)
        transport = TTransport.TBufferedTransport(handle)
        protocol = binary_protocol(transport)
        try:
            while not self._stopping.is_set():
                self.processor.process(protocol, protocol)
        except TTransport.TTransportException:
            pass  # the peer closed the connection: the normal end of every call
        except Exception as exc:  # a malformed peer must not kill the server
            log.debug("%s: connection ended: %s", self.name, exc)
        finally:
            with self._lock:
                self._clients.discard(conn)
            transport.close()
