"""The installed auditctl, run without the kernel (tests/helpers/auditctl_oracle.py), against our
parser and formatter: the hardening corpus and the golden cases, live."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers import auditctl_oracle as oracle

from osquery_audit_ext.audit.rule.codec import decode_rule, encode_rule
from osquery_audit_ext.audit.rule.format import format_rule
from osquery_audit_ext.audit.rule.parse import parse_rule, split_rules_file_line

pytestmark = pytest.mark.skipif(
    oracle.unavailable_reason() is not None, reason=str(oracle.unavailable_reason())
)
CORPUS = Path(__file__).parent / "rules_corpus.rules"
CORPUS_RULES = [w for w in map(split_rules_file_line, CORPUS.read_text().splitlines()) if w]
GOLDEN = json.loads((Path(__file__).parent / "golden" / "auditctl_x86_64.json").read_text())


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS_RULES) >= 40


@pytest.mark.parametrize("words", CORPUS_RULES, ids=lambda w: " ".join(w)[:70])
def test_corpus_rule_bytes_and_listing_match_auditctl(words: list[str]) -> None:
    code, payloads, stderr = oracle.run_auditctl(words)
    assert code == 0, stderr
    ours = encode_rule(parse_rule(words).rule)  # this host's machine, as auditctl uses
    assert payloads == [ours]
    (listed,) = oracle.auditctl_listing([oracle.clear_prepend(ours)])
    assert format_rule(decode_rule(oracle.clear_prepend(ours))) == listed


def test_golden_files_still_match_the_installed_auditctl() -> None:
    version = subprocess.run(["auditctl", "-v"], capture_output=True, text=True).stdout.strip()
    if version != GOLDEN["auditctl"] or GOLDEN["machine"] != "x86_64":
        pytest.skip(f"golden files are from {GOLDEN['auditctl']}, this is {version}")
    if os.uname().machine != GOLDEN["machine"]:
        pytest.skip("golden files were captured on another machine")
    for case in GOLDEN["accepted"]:
        code, payloads, _stderr = oracle.run_auditctl(shlex.split(case["rule"]))
        assert code == 0 and [p.hex() for p in payloads] == [case["payload"]], case["rule"]
    for case in GOLDEN["rejected"]:
        code, payloads, _ = oracle.run_auditctl(shlex.split(case["rule"]))
        assert code != 0 and payloads == [], case["rule"]
