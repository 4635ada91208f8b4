"""UnixSocket: thrift's TSocket writing each buffer whole, on real Unix sockets."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from thrift.transport import TTransport

from osquery_audit_ext.sdk.transport import UnixSocket


def _receive_all(sock: socket.socket, out: list[bytes]) -> None:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    out.append(b"".join(chunks))


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_a_large_buffer_arrives_whole_on_blocking_and_timeout_sockets(timeout):
    """With a timeout the socket is non-blocking underneath: send() takes ~200 KiB a call."""
    payload = os.urandom(1 << 16) * 128  # 8 MiB
    writer, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    writer.settimeout(timeout)
    received: list[bytes] = []
    thread = threading.Thread(target=_receive_all, args=(reader, received))
    thread.start()
    handle = UnixSocket()
    handle.setHandle(writer)
    handle.write(payload)
    handle.write(b"end")
    handle.close()
    thread.join(timeout=30)
    reader.close()
    assert received == [payload + b"end"]


def test_write_errors_are_transport_errors():
    handle = UnixSocket()
    with pytest.raises(TTransport.TTransportException) as closed:
        handle.write(b"x")
    assert closed.value.type == TTransport.TTransportException.NOT_OPEN
    writer, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    reader.close()
    handle.setHandle(writer)
    with pytest.raises(TTransport.TTransportException) as broken:
        handle.write(b"x" * (1 << 20))
    assert isinstance(broken.value.inner, BrokenPipeError)
    handle.close()
