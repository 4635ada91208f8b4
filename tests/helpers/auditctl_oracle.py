"""The installed auditctl as a kernel-free oracle, and the capture of the golden files.

auditctl_shim.c (LD_PRELOAD) makes auditctl write the audit_rule_data it would send to a file
instead of the kernel, and makes `auditctl -l` list payloads read from a file. So auditctl's
own parser and printer answer "what bytes does this rule text give?" and "how is this payload
listed?" without touching kernel audit state (which other tests share, and which may be
locked). Needs root (auditctl refuses otherwise), gcc and auditctl.

Regenerate the golden files:  .venv/bin/python tests/helpers/auditctl_oracle.py
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "audit" / "rule" / "golden"  # its golden files
SHIM_SOURCE = HERE / "auditctl_shim.c"
ACCEPTED_CASES = HERE / "cases.rules"
REJECTED_CASES = HERE / "rejected.rules"
GOLDEN = HERE / "auditctl_x86_64.json"
FRAME = struct.Struct("=I")


def unavailable_reason() -> str | None:
    """None when the oracle can run here, else why not."""
    if os.geteuid() != 0:
        return "the auditctl oracle needs root (auditctl refuses to run otherwise)"
    for tool in ("auditctl", "gcc"):
        if shutil.which(tool) is None:
            return f"the auditctl oracle needs {tool}"
    return None


@functools.lru_cache(maxsize=1)
def shim_library() -> Path:
    """Build the shim once per process."""
    out = Path(tempfile.mkdtemp(prefix="oae-auditctl-shim-")) / "shim.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out


def _frames(data: bytes) -> list[bytes]:
    payloads, offset = [], 0
    while offset < len(data):
        (size,) = FRAME.unpack_from(data, offset)
        payloads.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return payloads


def run_auditctl(words: list[str]) -> tuple[int, list[bytes], str]:
    """Run auditctl WORDS under the shim: (exit code, payloads it would send, stderr)."""
    with tempfile.TemporaryDirectory(prefix="oae-oracle-") as tmp:
        out = Path(tmp) / "sent.bin"
        env = dict(os.environ, LD_PRELOAD=str(shim_library()), OAE_SHIM_OUT=str(out))
        proc = subprocess.run(
            ["auditctl", *words], capture_output=True, text=True, env=env, timeout=30
        )
        payloads = _frames(out.read_bytes()) if out.exists() else []
    return proc.returncode, payloads, proc.stderr.strip()


def auditctl_listing(payloads: list[bytes]) -> list[str]:
    """The lines `auditctl -l` prints for these rule payloads (in this order)."""
    with tempfile.TemporaryDirectory(prefix="oae-oracle-") as tmp:
        rules = Path(tmp) / "rules.bin"
        rules.write_bytes(b"".join(FRAME.pack(len(p)) + p for p in payloads))
        env = dict(os.environ, LD_PRELOAD=str(shim_library()), OAE_SHIM_IN=str(rules))
        proc = subprocess.run(
            ["auditctl", "-l"], capture_output=True, text=True, env=env, timeout=30, check=True
        )
    return proc.stdout.splitlines()


def read_cases(path: Path) -> list[str]:
    """Rule texts, one per line (shell quoting); blank lines and # comments skipped."""
    lines = path.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def clear_prepend(payload: bytes) -> bytes:
    """The payload as the kernel lists it: -A's prepend flag is gone once the rule is in."""
    (flags,) = FRAME.unpack_from(payload)
    return FRAME.pack(flags & ~0x10) + payload[4:]


def capture() -> dict[str, object]:
    version = subprocess.run(["auditctl", "-v"], capture_output=True, text=True).stdout.strip()
    accepted = []
    for text in read_cases(ACCEPTED_CASES):
        code, payloads, stderr = run_auditctl(shlex.split(text))
        if code != 0 or len(payloads) != 1:
            raise SystemExit(f"auditctl did not accept {text!r}: {stderr}")
        (listed,) = auditctl_listing([clear_prepend(payloads[0])])
        accepted.append({"rule": text, "payload": payloads[0].hex(), "listed": listed})
    rejected = []
    for text in read_cases(REJECTED_CASES):
        code, payloads, stderr = run_auditctl(shlex.split(text))
        if code == 0 or payloads:
            raise SystemExit(f"auditctl accepted {text!r}, expected a rejection")
        rejected.append({"rule": text, "auditctl_error": stderr})
    return {
        "auditctl": version,
        "machine": os.uname().machine,
        "accepted": accepted,
        "rejected": rejected,
    }


def main() -> int:
    reason = unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    GOLDEN.write_text(json.dumps(capture(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
