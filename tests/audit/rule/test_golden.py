"""Golden files captured from auditctl 3.0.9 (tests/helpers/auditctl_oracle.py): the exact bytes
auditctl sends for each rule text and the exact line `auditctl -l` prints for it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from osquery_audit_ext.audit.rule.codec import decode_rule, encode_rule
from osquery_audit_ext.audit.rule.format import format_rule
from osquery_audit_ext.audit.rule.parse import parse_rule
from osquery_audit_ext.errors import RuleSyntaxError

GOLDEN = json.loads((Path(__file__).parent / "golden" / "auditctl_x86_64.json").read_text())
ACCEPTED = GOLDEN["accepted"]
REJECTED = GOLDEN["rejected"]
MACHINE = "x86_64"  # the machine the golden files were captured on


def case_id(case: dict[str, str]) -> str:
    return case["rule"][:60]


def test_golden_files_are_from_auditctl() -> None:
    assert GOLDEN["auditctl"].startswith("auditctl version 3.")
    assert GOLDEN["machine"] == MACHINE
    assert len(ACCEPTED) >= 100 and len(REJECTED) >= 70


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_encoding_is_byte_identical_to_auditctl(case: dict[str, str]) -> None:
    command = parse_rule(case["rule"], machine=MACHINE)
    assert encode_rule(command.rule).hex() == case["payload"]
    expected_op = {"-a": "add", "-w": "add", "-A": "prepend", "-d": "delete", "-W": "delete"}
    assert command.op == expected_op[case["rule"][:2]]


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_listing_is_identical_to_auditctl(case: dict[str, str]) -> None:
    # As the kernel lists it: -A's prepend flag does not survive the add.
    listed = dataclasses.replace(decode_rule(bytes.fromhex(case["payload"])), prepend=False)
    assert format_rule(listed, machine=MACHINE) == case["listed"]


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_auditctl_bytes_decode_to_the_parsed_rule(case: dict[str, str]) -> None:
    assert (
        decode_rule(bytes.fromhex(case["payload"]))
        == parse_rule(case["rule"], machine=MACHINE).rule
    )


@pytest.mark.parametrize("case", REJECTED, ids=case_id)
def test_what_auditctl_refuses_is_refused(case: dict[str, str]) -> None:
    with pytest.raises(RuleSyntaxError) as raised:
        parse_rule(case["rule"], machine=MACHINE)
    message = str(raised.value)
    assert "\n" not in message and message
