"""The audit netlink transport: one NETLINK_AUDIT socket, control requests and event records.

Control requests are matched to their replies by sequence number; audit event records that
arrive in between are kept (never lost) and handed out first by `recv()`, the reader's hot
path. Kernel errors become the errors.py exceptions a user can act on.
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import struct
import threading
import time
from collections import deque

from ..errors import (
    AuditExtError,
    AuditPermissionError,
    AuditPidTaken,
    AuditProtocolError,
    AuditRuleRejected,
    AuditUnavailable,
    ConfigError,
)
from . import mmsg
from .consts import (
    AUDIT_ADD_RULE,
    AUDIT_DEL_RULE,
    AUDIT_GET,
    AUDIT_GET_FEATURE,
    AUDIT_LIST_RULES,
    AUDIT_NLGRP_READLOG,
    AUDIT_SET,
    AUDIT_SET_FEATURE,
    AUDIT_SIGNAL_INFO,
    NETLINK_AUDIT,
    NLM_F_ACK,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_NOOP,
    NLMSG_OVERRUN,
)

MESSAGE_NAMES = {
    AUDIT_GET: "AUDIT_GET",
    AUDIT_SET: "AUDIT_SET",
    AUDIT_SIGNAL_INFO: "AUDIT_SIGNAL_INFO",
    AUDIT_ADD_RULE: "AUDIT_ADD_RULE",
    AUDIT_DEL_RULE: "AUDIT_DEL_RULE",
    AUDIT_LIST_RULES: "AUDIT_LIST_RULES",
    AUDIT_SET_FEATURE: "AUDIT_SET_FEATURE",
    AUDIT_GET_FEATURE: "AUDIT_GET_FEATURE",
}
# Requests answered by exactly one reply message (besides the ack).
SINGLE_REPLY = frozenset({AUDIT_GET, AUDIT_GET_FEATURE, AUDIT_SIGNAL_INFO})
# Requests answered by a stream of replies ending with NLMSG_DONE.
MULTI_REPLY = frozenset({AUDIT_LIST_RULES})

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host byte order)
NLMSG_ERRNO = struct.Struct("=i")
NLMSG_TYPE_SEQ = struct.Struct("=HHI")  # type, flags, seq: at offset 4 of a header
MAX_ERRNO = 4095  # acks carry -errno; anything below -MAX_ERRNO is a wrapped u32 value
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
RECV_BUFFER_SIZE = 1 << 18  # an audit record is at most ~9 KB; rule replies can be larger

UNAVAILABLE_ERRNOS = (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT, errno.ECONNREFUSED)
UNAVAILABLE_MESSAGE = (
    "kernel audit is not available: not compiled in, "
    "or not in the host network namespace (containers)"
)


def nlmsg_align(length: int) -> int:
    return (length + 3) & ~3


def encode_message(msg_type: int, flags: int, seq: int, payload: bytes = b"") -> bytes:
    """One netlink message: header (len counts header and payload) then the payload."""
    return NLMSG_HDR.pack(NLMSG_HDRLEN + len(payload), msg_type, flags, seq, 0) + payload


def split_messages(data: bytes | memoryview) -> list[tuple[int, int, int, bytes]]:
    """The (type, flags, seq, payload) of each NLMSG_ALIGN'd message in a reply datagram.

    The last message's padding may be present or not; any other leftover (a cut header or
    payload) is an AuditProtocolError rather than a silently shorter list.
    """
    messages = []
    offset = 0
    end = len(data)
    while offset < end:
        if end - offset < NLMSG_HDRLEN:
            raise AuditProtocolError(
                f"truncated netlink header: {end - offset} bytes at offset {offset} "
                f"of a {end}-byte datagram"
            )
        length, msg_type, flags, seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDRLEN or offset + length > end:
            raise AuditProtocolError(
                f"malformed netlink message: length {length} at offset {offset} "
                f"of a {end}-byte datagram"
            )
        messages.append(
            (msg_type, flags, seq, bytes(data[offset + NLMSG_HDRLEN : offset + length]))
        )
        offset += nlmsg_align(length)
    return messages


def kernel_error(msg_type: int, err: int) -> AuditExtError:
    """The exception for errno `err` the kernel acked to a request of msg_type.

    The errno is kept on the exception as `kernel_errno` for callers that must tell
    cases apart (an old kernel's EINVAL for an unknown request type, say).
    """
    exc = _kernel_error(msg_type, err)
    exc.kernel_errno = err  # type: ignore[attr-defined]
    return exc


def _kernel_error(msg_type: int, err: int) -> AuditExtError:
    name = MESSAGE_NAMES.get(msg_type, str(msg_type))
    reason = os.strerror(err)
    if msg_type == AUDIT_SET:
        if err == errno.EEXIST:
            return AuditPidTaken("another process is registered as the audit daemon (audit pid)")
        if err == errno.EACCES:
            return AuditPidTaken("only the registered audit daemon can clear the audit pid")
        if err == errno.EINVAL:
            return ConfigError(f"the kernel rejected the audit setting ({reason})")
    if err in (errno.EPERM, errno.EACCES):
        return AuditPermissionError(f"{name} refused ({reason}): needs root / CAP_AUDIT_CONTROL")
    if msg_type in (AUDIT_ADD_RULE, AUDIT_DEL_RULE):
        if msg_type == AUDIT_ADD_RULE and err == errno.EEXIST:
            return AuditRuleRejected("rule exists")
        if msg_type == AUDIT_DEL_RULE and err == errno.ENOENT:
            return AuditRuleRejected("no such rule")
        return AuditRuleRejected(f"the kernel rejected the rule ({reason})")
    if err in UNAVAILABLE_ERRNOS:
        return AuditUnavailable(UNAVAILABLE_MESSAGE)
    return AuditExtError(f"{name} failed: {reason}")


def socket_error(exc: OSError, *, multicast: bool) -> AuditExtError:
    if exc.errno in UNAVAILABLE_ERRNOS:
        return AuditUnavailable(UNAVAILABLE_MESSAGE)
    if exc.errno in (errno.EPERM, errno.EACCES):
        if multicast:
            return AuditPermissionError(
                "reading the audit multicast group needs root with CAP_AUDIT_READ"
            )
        return AuditPermissionError("audit control needs root with CAP_AUDIT_CONTROL")
    return AuditExtError(f"audit netlink socket: {exc.strerror or exc}")


class AuditNetlink:
    """One audit netlink socket: unicast (groups 0) or bound to the read-only multicast group.

    `request()` may be called from several threads; `recv()` belongs to one reader thread and
    must not run while that same socket is inside `request()` on another thread.

    `peer` replaces the netlink socket with a connected datagram socket whose other end
    plays the kernel (tests drive the reply matching through a real socket pair with it);
    every datagram from it counts as the kernel's.
    """

    def __init__(
        self,
        *,
        multicast: bool = False,
        rcvbuf: int | None = None,
        peer: socket.socket | None = None,
    ) -> None:
        self._sock: socket.socket | None = None
        self.multicast = multicast
        self.enobufs = 0  # receive-buffer overruns seen (events the kernel dropped for us)
        self.pending: deque[tuple[int, bytes]] = deque()  # events read while awaiting a reply
        self._seq = int(time.time()) & 0xFFFF  # any start works; differs between runs
        self._lock = threading.Lock()
        self._buffer = bytearray(RECV_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._timeout: float | None = -1.0  # the timeout last given to the socket
        self._poller: select.poll | None = None
        self._batches: mmsg.BatchReceiver | None = None
        self._netlink = peer is None  # False: `peer` stands in for the kernel
        if peer is not None:
            self._sock = peer
            self.portid = 0
            return
        try:
            sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT
            )
        except OSError as exc:
            raise socket_error(exc, multicast=multicast) from None
        try:
            groups = 1 << (AUDIT_NLGRP_READLOG - 1) if multicast else 0
            sock.bind((0, groups))
            if rcvbuf:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
                except PermissionError:  # no CAP_NET_ADMIN: capped by net.core.rmem_max
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError as exc:
            sock.close()
            raise socket_error(exc, multicast=multicast) from None
        self._sock = sock
        self.portid: int = sock.getsockname()[0]

    # -- plumbing ---------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._socket().fileno()

    def close(self) -> None:
        sock, self._sock = getattr(self, "_sock", None), None
        if sock is not None:
            sock.close()

    def __enter__(self) -> AuditNetlink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise AuditExtError("the audit netlink socket is closed")
        return self._sock

    def _set_timeout(self, sock: socket.socket, timeout: float | None) -> None:
        if timeout != self._timeout:
            sock.settimeout(timeout)
            self._timeout = timeout

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1  # never 0: records carry seq 0
        return self._seq

    def _send(self, sock: socket.socket, message: bytes) -> None:
        if self._netlink:
            sock.sendto(message, (0, 0))  # to the kernel: port id 0, no groups
        else:
            sock.send(message)

    def _receive(self, sock: socket.socket, timeout: float | None) -> int:
        """Bytes of the next datagram from the kernel in self._buffer; 0 on timeout."""
        self._set_timeout(sock, timeout)
        while True:
            try:
                n, address = sock.recvfrom_into(self._buffer, 0, socket.MSG_TRUNC)
            except socket.timeout:
                return 0
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.enobufs += 1
                    continue
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return 0
                raise AuditExtError(f"audit netlink receive failed: {exc.strerror}") from None
            if self._netlink and address[0] != 0:
                continue  # not from the kernel (port id 0): not ours to trust
            if n < NLMSG_HDRLEN:
                continue  # not even a header
            return min(n, RECV_BUFFER_SIZE)

    # -- events -----------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """The next audit record (type, payload) from the kernel, or None on timeout."""
        records = self.recv_many(timeout, 1)
        return records[0] if records else None

    def recv_many(self, timeout: float | None = None, limit: int = 256) -> list[tuple[int, bytes]]:
        """The audit records (type, payload) waiting, at most `limit`; if none is waiting,
        wait up to `timeout` seconds (None: forever) for one. [] on timeout.

        The socket is read without blocking and the wait is a poll. With a limit of at least
        mmsg.BATCH a busy stream costs one system call per batch of records (recvmmsg), else
        one per record. The payload runs to the end of the datagram: the kernel's header
        length of a unicast record counts only the payload, so it is not used. Late replies
        to requests that timed out (seq not 0) are dropped here.
        """
        out: list[tuple[int, bytes]] = []
        pending = self.pending
        while pending and len(out) < limit:
            out.append(pending.popleft())
        if out:
            return out
        sock = self._socket()
        batched = limit >= mmsg.BATCH and self._netlink and mmsg.available()
        deadline = None
        # A short last batch emptied the queue: poll first (it returns at once if more came)
        # rather than spend a recvmmsg call on EAGAIN, once per wake-up of a trickle.
        poll_first = batched and self._batches is not None and self._batches.short
        while True:
            if poll_first:
                poll_first = False
                got = None
            else:
                got = self._read_batch(sock) if batched else self._read_waiting(sock, limit)
            if got:
                return got
            if got is not None:
                continue  # only late replies or foreign datagrams: look again
            now = time.monotonic()
            if timeout is not None:
                if deadline is None:
                    deadline = now + timeout
                elif now >= deadline:
                    return []
            if not self._wait_readable(sock, None if deadline is None else deadline - now):
                return []

    def _read_waiting(self, sock: socket.socket, limit: int) -> list[tuple[int, bytes]] | None:
        """Up to `limit` records already waiting, one recv each; None when none was waiting."""
        out: list[tuple[int, bytes]] = []
        buffer, view = self._buffer, self._view
        read_any = False
        while len(out) < limit:
            n = self._receive(sock, 0.0)
            if not n:
                break
            read_any = True
            msg_type, _flags, seq = NLMSG_TYPE_SEQ.unpack_from(buffer, 4)
            if seq == 0:
                out.append((msg_type, bytes(view[NLMSG_HDRLEN:n])))
        return out if read_any else None

    def _read_batch(self, sock: socket.socket) -> list[tuple[int, bytes]] | None:
        """The records of one recvmmsg call; None when nothing was waiting."""
        batches = self._batches
        if batches is None:
            batches = self._batches = mmsg.BatchReceiver(sock.fileno())
        try:
            return batches.receive()
        except OSError as exc:
            raise AuditExtError(f"audit netlink receive failed: {exc.strerror}") from None
        finally:
            self.enobufs += batches.enobufs
            batches.enobufs = 0

    def _wait_readable(self, sock: socket.socket, timeout: float | None) -> bool:
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(sock, select.POLLIN)
        try:
            return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))
        except InterruptedError:
            return True  # look again

    # -- control requests -------------------------------------------------------------------

    def request(
        self, msg_type: int, payload: bytes = b"", *, timeout: float = 2.0
    ) -> list[tuple[int, bytes]]:
        """Send one control request; return its reply messages (type, payload), kernel order.

        GET-like requests return one reply, LIST_RULES one message per rule (NLMSG_DONE is
        not included), SET/ADD/DEL none. Raises the mapped error if the kernel refuses.
        """
        replies, _code = self.exchange(msg_type, payload, timeout=timeout)
        return replies

    def exchange(
        self, msg_type: int, payload: bytes = b"", *, timeout: float = 2.0
    ) -> tuple[list[tuple[int, bytes]], int]:
        """Like request(), also returning the ack's non-negative code.

        The kernel puts a value in the ack for some requests: AUDIT_SET with mask lost alone
        acks with the old lost counter.
        """
        with self._lock:
            sock = self._socket()
            seq = self._next_seq()
            message = encode_message(msg_type, NLM_F_REQUEST | NLM_F_ACK, seq, payload)
            try:
                self._send(sock, message)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES) or exc.errno in UNAVAILABLE_ERRNOS:
                    raise kernel_error(msg_type, exc.errno) from None
                raise AuditExtError(f"audit netlink send failed: {exc.strerror}") from None
            return self._await_reply(sock, msg_type, seq, timeout)

    def _await_reply(
        self, sock: socket.socket, msg_type: int, seq: int, timeout: float
    ) -> tuple[list[tuple[int, bytes]], int]:
        """Read until the ack and the replies to `seq` are in; records go to `pending`.

        The ack may come before or after the replies. A datagram with seq 0 is an audit
        record (AUDIT_USER 1005 and AUDIT_LOGIN 1006 included, whose types look like control
        types); any other seq is a late reply to an earlier request, dropped.
        """
        replies: list[tuple[int, bytes]] = []
        ack: int | None = None
        done = msg_type not in SINGLE_REPLY and msg_type not in MULTI_REPLY
        deadline = time.monotonic() + timeout
        while ack is None or not done:
            remaining = deadline - time.monotonic()
            n = self._receive(sock, remaining) if remaining > 0 else 0
            if not n:
                name = MESSAGE_NAMES.get(msg_type, str(msg_type))
                missing = "acknowledgement" if ack is None else "reply"
                raise AuditProtocolError(f"no {missing} from the kernel to {name} in {timeout}s")
            first_type, _flags, first_seq = NLMSG_TYPE_SEQ.unpack_from(self._buffer, 4)
            if first_seq == 0:
                self.pending.append((first_type, bytes(self._view[NLMSG_HDRLEN:n])))
                continue
            if first_seq != seq:
                continue  # a late reply to an earlier request that timed out
            for reply_type, _flags, reply_seq, body in split_messages(self._view[:n]):
                if reply_seq != seq:
                    continue
                if reply_type == NLMSG_ERROR:
                    if len(body) < NLMSG_ERRNO.size:
                        raise AuditProtocolError("short netlink acknowledgement from the kernel")
                    code = NLMSG_ERRNO.unpack_from(body)[0]
                    if code < -MAX_ERRNO:
                        code &= 0xFFFFFFFF  # a u32 value (old lost count) past 2**31
                    if code < 0:
                        raise kernel_error(msg_type, -code)
                    ack = code
                elif reply_type == NLMSG_DONE:
                    done = True
                elif reply_type == NLMSG_OVERRUN:
                    raise AuditProtocolError("the kernel reported a netlink overrun")
                elif reply_type != NLMSG_NOOP:
                    replies.append((reply_type, body))
                    if msg_type in SINGLE_REPLY:
                        done = True
        return replies, ack
