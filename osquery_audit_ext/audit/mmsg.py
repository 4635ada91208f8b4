"""recvmmsg(2) for the audit socket: many datagrams per system call, through ctypes.

During a storm the kernel queues records faster than one recv per record can take them;
one recvmmsg takes up to BATCH at once. Lengths, senders and netlink headers of a batch are
read with strided memoryviews (one C call each), so Python touches each datagram once, to
copy its payload out.
"""

from __future__ import annotations

import array
import ctypes
import errno
import mmap
import os
import socket

from .consts import NLMSG_HDRLEN

BATCH = 64  # datagrams per call
SLOT = 16384  # bytes per datagram: an audit record is at most ~9 KB (MAX_AUDIT_MESSAGE_LENGTH)


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_IoVec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


class _SockAddrNl(ctypes.Structure):
    _fields_ = [
        ("family", ctypes.c_ushort),
        ("pad", ctypes.c_ushort),
        ("pid", ctypes.c_uint32),
        ("groups", ctypes.c_uint32),
    ]


def _load_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        # The interpreter's own symbols include libc's (no library search, no subprocess).
        function = ctypes.CDLL(None, use_errno=True).recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(_MMsgHdr),
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    function.restype = ctypes.c_int
    return function


_RECVMMSG = _load_recvmmsg()


def available() -> bool:
    return _RECVMMSG is not None


class BatchReceiver:
    """Reads up to BATCH netlink datagrams from a socket fd per call, without blocking."""

    def __init__(self, fd: int) -> None:
        if _RECVMMSG is None:
            raise OSError(errno.ENOSYS, "recvmmsg is not available")
        self.fd = fd
        self.enobufs = 0
        # Anonymous memory: a page is resident once the kernel writes a datagram to it (a
        # record fills the start of its slot), not all BATCH * SLOT bytes zeroed up front.
        self._memory = mmap.mmap(-1, BATCH * SLOT)
        self._data = (ctypes.c_char * (BATCH * SLOT)).from_buffer(self._memory)
        self._names = (_SockAddrNl * BATCH)()
        self._iovecs = (_IoVec * BATCH)()
        self._headers = (_MMsgHdr * BATCH)()
        base = ctypes.addressof(self._data)
        for i in range(BATCH):
            self._iovecs[i].base = base + i * SLOT
            self._iovecs[i].len = SLOT
            header = self._headers[i].hdr
            header.iov = ctypes.pointer(self._iovecs[i])
            header.iovlen = 1
            header.name = ctypes.addressof(self._names[i])
            header.namelen = ctypes.sizeof(_SockAddrNl)
        u32 = memoryview(self._data).cast("B").cast("I")
        u16 = memoryview(self._data).cast("B").cast("H")
        # Strided views: element i of each is a field of datagram i (or of its header).
        self._types = u16[2 :: SLOT // 2]  # nlmsg_type
        self._seqs = u32[2 :: SLOT // 4]  # nlmsg_seq
        stride = ctypes.sizeof(_MMsgHdr) // 4
        header_u32 = memoryview(self._headers).cast("B").cast("I")
        self._lengths = header_u32[_MMsgHdr.len.offset // 4 :: stride]
        name_stride = ctypes.sizeof(_SockAddrNl) // 4
        self._senders = (
            memoryview(self._names).cast("B").cast("I")[_SockAddrNl.pid.offset // 4 :: name_stride]
        )
        # Each call's namelens are reset with one strided copy, not a ctypes field per datagram.
        self._namelens = header_u32[(_MMsgHdr.hdr.offset + _MsgHdr.namelen.offset) // 4 :: stride]
        self._namelen_fill = memoryview(array.array("I", [ctypes.sizeof(_SockAddrNl)] * BATCH))
        # Whether the last call took fewer than BATCH datagrams: then the queue was most likely
        # emptied, and the caller polls before the next call rather than making it to see EAGAIN.
        self.short = False

    def receive(self) -> list[tuple[int, bytes]] | None:
        """The records (type, payload) of the datagrams waiting, kernel-sent and seq 0 only;
        None when nothing is waiting. Raises OSError for errors other than ENOBUFS (counted)
        and EINTR."""
        headers = self._headers
        while True:
            got = _RECVMMSG(self.fd, headers, BATCH, socket.MSG_DONTWAIT, None)  # type: ignore[misc]
            if got >= 0:
                break
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.short = True
                return None
            if code == errno.ENOBUFS:
                self.enobufs += 1
                continue
            if code == errno.EINTR:
                continue
            raise OSError(code, os.strerror(code))
        self.short = got < BATCH
        # The kernel wrote the senders' address lengths: reset them.
        self._namelens[:got] = self._namelen_fill[:got]
        lengths = self._lengths[:got].tolist()
        senders = self._senders[:got].tolist()
        seqs = self._seqs[:got].tolist()
        types = self._types[:got].tolist()
        memory = self._memory  # slicing the mmap gives bytes in one step
        if any(senders) or any(seqs) or min(lengths, default=NLMSG_HDRLEN) < NLMSG_HDRLEN:
            out = []
            for i in range(got):
                length = lengths[i]
                if senders[i] or seqs[i] or length < NLMSG_HDRLEN:
                    continue  # not from the kernel, a late reply, or not even a header
                start = i * SLOT
                out.append((types[i], memory[start + NLMSG_HDRLEN : start + length]))
            return out
        # Every datagram a record from the kernel (nearly every batch): no test per datagram.
        return [
            (msg_type, memory[start + NLMSG_HDRLEN : start + length])
            for msg_type, start, length in zip(types, range(0, got * SLOT, SLOT), lengths)
        ]
