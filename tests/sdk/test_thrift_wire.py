"""Our generated Thrift bindings against the wire bytes of the ones osquery-python shipped.

Golden files (tests/sdk/golden/thrift/NAME.bin: a request, then its reply) were written by
tests/helpers/thrift_wire.py with osquery-python 3.1.1's bindings over thrift's pure-Python
binary protocol. Our bindings must write exactly those bytes and read them back, with the
C-accelerated protocol (fastbinary) and with the pure-Python one, in any pairing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.thrift_wire import answers, calls, exchanges
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.transport import TTransport

from osquery_audit_ext.sdk import osquery_thrift, transport
from osquery_audit_ext.sdk.osquery_thrift import ttypes

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "thrift"
GENERATOR = ROOT / "scripts" / "gen_thrift.py"

try:
    from thrift.protocol import fastbinary  # noqa: F401

    HAVE_FASTBINARY = True
except ImportError:
    HAVE_FASTBINARY = False

PROTOCOLS = {"pure": TBinaryProtocol, "accelerated": transport.binary_protocol}


def test_every_call_has_a_golden() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.bin")) == sorted(calls(ttypes))


@pytest.mark.parametrize("server", sorted(PROTOCOLS))
@pytest.mark.parametrize("client", sorted(PROTOCOLS))
def test_wire_bytes_equal_osquery_python(client: str, server: str) -> None:
    done = exchanges(osquery_thrift, PROTOCOLS[client], PROTOCOLS[server])
    expected = answers(ttypes)
    for name, (wire, result) in done.items():
        assert wire == (GOLDEN / f"{name}.bin").read_bytes(), name
        assert result == expected[name], name


@pytest.mark.skipif(not HAVE_FASTBINARY, reason="thrift's C extension (fastbinary) is not built")
def test_the_accelerated_protocol_really_runs_in_c() -> None:
    assert transport.accelerated()
    protocol = transport.binary_protocol(TTransport.TMemoryBuffer())
    status = ttypes.ExtensionStatus(code=0, message="pong", uuid=0)
    # fastbinary rejects osquery-python's old thrift_spec; ours it encodes.
    encoded = protocol._fast_encode(status, [ttypes.ExtensionStatus, status.thrift_spec])
    assert encoded == (GOLDEN / "ping.bin").read_bytes()[-len(encoded) - 1 : -1]


@pytest.mark.skipif(
    shutil.which("thrift") is None,
    reason="thrift is not installed (Debian package thrift-compiler)",
)
def test_committed_bindings_match_the_generator() -> None:
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True
    )
    if proc.returncode == 2:
        pytest.skip(proc.stderr.strip())  # another thrift version than the pinned one
    assert proc.returncode == 0, proc.stderr
