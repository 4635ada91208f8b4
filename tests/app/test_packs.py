"""Packs: shape validation and the generated Fleet YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osquery_audit_ext.app.packs import fleet_yaml, load_pack, parse_pack

PACKS_DIR = Path(__file__).resolve().parents[2] / "packs"
PACK_FILES = sorted(PACKS_DIR.glob("*.conf"))


def test_packs_exist():
    names = {p.name for p in PACK_FILES}
    assert {
        "audit-process.conf",
        "audit-socket.conf",
        "audit-health.conf",
        "audit-user-login.conf",
        "audit-file-integrity.conf",
    } <= names


@pytest.mark.parametrize("path", PACK_FILES, ids=lambda p: p.name)
def test_shipped_packs_are_valid(path):
    pack, problems = load_pack(str(path))
    assert problems == []
    assert pack is not None and pack.queries


def test_fleet_yaml_is_generated_from_the_packs():
    packs = [load_pack(str(p))[0] for p in PACK_FILES]
    expected = fleet_yaml(packs)
    assert (PACKS_DIR / "fleet" / "audit-queries.yml").read_text() == expected, (
        "packs/fleet/audit-queries.yml is stale: run `osquery-audit-ext packs fleet "
        "packs/*.conf > packs/fleet/audit-queries.yml`"
    )


def test_fleet_yaml_logging_modes():
    text = json.dumps(
        {
            "queries": {
                "a": {"query": "SELECT 1;", "interval": 10, "snapshot": True},
                "b": {"query": "SELECT 2;", "interval": 10, "removed": False},
                "c": {"query": "SELECT 3;", "interval": 10},
            }
        }
    )
    pack, problems = parse_pack("p.conf", text)
    assert problems == []
    yaml = fleet_yaml([pack])
    assert [line.split(": ")[1] for line in yaml.splitlines() if "logging:" in line] == [
        "snapshot",
        "differential_ignore_removals",
        "differential",
    ]
    assert '    query: "SELECT 1;"' in yaml


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", "a pack is a JSON object"),
        ('{"queries": {}}', "must be a non-empty object"),
        ('{"querys": {"a": {"query": "SELECT 1"}}}', "unknown pack key 'querys'"),
        ('{"queries": {"a": {"query": "SELECT 1", "intervall": 5}}}', "unknown key 'intervall'"),
        (
            '{"queries": {"a": {"query": "SELECT 1", "interval": "soon"}}}',
            "interval must be an integer",
        ),
        ('{"queries": {"a": {"query": "SELECT 1", "interval": 0}}}', "outside 1..604800"),
        ('{"queries": {"a": {"interval": 5}}}', "needs a non-empty 'query'"),
        (
            '{"queries": {"a": {"query": "SELECT 1", "snapshot": "yes"}}}',
            "snapshot must be true or false",
        ),
        (
            '{"platform": "beos", "queries": {"a": {"query": "SELECT 1"}}}',
            "unknown platform 'beos'",
        ),
    ],
)
def test_bad_packs_name_the_problem(text, problem):
    _pack, problems = parse_pack("bad.conf", text)
    assert any(problem in p and p.startswith("bad.conf") for p in problems), problems


@pytest.mark.kernel
def test_every_pack_query_runs_against_our_tables(capsys):
    from osquery_audit_ext.cli import main

    assert main(["packs", "check", *map(str, PACK_FILES)]) == 0
    out = capsys.readouterr().out
    assert "0 problem(s): ok" in out


@pytest.mark.kernel
def test_a_query_on_a_missing_column_is_reported(tmp_path, capsys):
    from osquery_audit_ext.cli import main

    pack = tmp_path / "bad.conf"
    pack.write_text(
        json.dumps({"queries": {"typo": {"query": "SELECT cmdlin FROM process_events;"}}})
    )
    assert main(["packs", "check", str(pack)]) == 1
    err = capsys.readouterr().err
    assert f"{pack}: queries.typo: " in err and "cmdlin" in err
