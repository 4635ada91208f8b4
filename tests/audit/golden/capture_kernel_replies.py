"""Re-capture kernel_replies.json: raw reply datagrams of read-only audit requests.

Run as root: `python tests/audit/golden/capture_kernel_replies.py > kernel_replies.json`.
Independent of the package on purpose (plain socket and struct), so the golden data does not
come from the code it checks. Every request here is read-only or a no-op (AUDIT_SET with
mask 0, an unknown type the kernel refuses with EINVAL).
"""

from __future__ import annotations

import json
import os
import platform
import select
import socket
import struct


def capture() -> dict[str, object]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)
    sock.bind((0, 0))

    def exchange(msg_type: int, seq: int, payload: bytes = b"") -> list[str]:
        header = struct.pack("=IHHII", 16 + len(payload), msg_type, 5, seq, 0)
        sock.sendto(header + payload, (0, 0))
        datagrams = []
        while select.select([sock], [], [], 0.5)[0]:
            data, (sender, _groups) = sock.recvfrom(65536)
            if sender == 0 and struct.unpack_from("=I", data, 8)[0] == seq:
                datagrams.append(data.hex())
        return datagrams

    return {
        "kernel": f"Linux {platform.release()} {platform.machine()}",
        "portid": sock.getsockname()[0],
        "get": exchange(1000, 101),
        "get_feature": exchange(1019, 102),
        "list_rules": exchange(1013, 103),
        "set_mask0": exchange(1001, 104, bytes(44)),
        "unknown_1099": exchange(1099, 105),
    }


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    print(json.dumps(capture(), indent=1))
