"""A datagram socket playing the kernel's end of the audit netlink, for kernel-free tests.

`KernelPeer` is the far end of a socketpair(AF_UNIX, SOCK_DGRAM) handed to AuditNetlink as
its socket: it reads each request and answers with datagrams built here independently of
the code under test, including the kernel's quirks (records with seq 0 whose header length
counts only the payload).
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Callable

from osquery_audit_ext.audit.consts import AUDIT_GET, NLMSG_ERROR
from osquery_audit_ext.audit.netlink import AuditNetlink

HEADER = struct.Struct("<IHHII")  # the kernel's nlmsghdr on this (little-endian) machine


def nlmsg(
    msg_type: int,
    seq: int,
    payload: bytes = b"",
    *,
    flags: int = 0,
    length: int | None = None,
    pad: bool = True,
) -> bytes:
    """One netlink message as the kernel writes it (length overridable for its quirks)."""
    size = HEADER.size + len(payload) if length is None else length
    data = HEADER.pack(size, msg_type, flags, seq, 0) + payload
    return data + bytes(-len(data) % 4) if pad else data


def ack(seq: int, code: int = 0, request_type: int = AUDIT_GET) -> bytes:
    """NLMSG_ERROR: the i32 code, then the request's header echoed."""
    echoed = HEADER.pack(HEADER.size, request_type, 5, seq, 0)
    return nlmsg(NLMSG_ERROR, seq, struct.pack("<i", code) + echoed, flags=0x100)


def record(msg_type: int, text: bytes) -> bytes:
    """An audit record as unicast delivers it: seq 0, header length = payload length only."""
    return nlmsg(msg_type, 0, text, length=len(text), pad=False)


Request = tuple[int, int, int, int, int, bytes]  # len, type, flags, seq, pid, payload
Script = Callable[[Request], list[bytes]]


class KernelPeer:
    """A datagram socket answering AuditNetlink's requests as the kernel would."""

    def __init__(self) -> None:
        self.kernel, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.netlink = AuditNetlink(peer=ours)
        self.requests: list[Request] = []
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def read_request(self, timeout: float = 5.0) -> Request:
        self.kernel.settimeout(timeout)
        data = self.kernel.recv(65536)
        length, msg_type, flags, seq, pid = HEADER.unpack_from(data)
        request = (length, msg_type, flags, seq, pid, data[HEADER.size :])
        self.requests.append(request)
        return request

    def send(self, *datagrams: bytes) -> None:
        for datagram in datagrams:
            self.kernel.send(datagram)

    def answer(self, script: Script, count: int = 1) -> None:
        """Answer the next `count` requests, each with script(request), on a thread."""

        def serve() -> None:
            try:
                for _ in range(count):
                    self.send(*script(self.read_request()))
            except BaseException as exc:  # surfaced by join()
                self.error = exc

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.netlink.close()
        self.kernel.close()


def seq_of(request: Request) -> int:
    return request[3]
