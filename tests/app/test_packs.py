"""Packs: shape validation and the generated Fleet YAML."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize(
    ("key", "file"), [("reports", "audit-reports.yml"), ("queries", "audit-queries.yml")]
)
def test_fleet_yaml_is_generated_from_the_packs(key, file):
    packs = [load_pack(str(p))[0] for p in PACK_FILES]
    text = (PACKS_DIR / "fleet" / file).read_text()
    assert text == fleet_yaml(packs, key), (
        f"packs/fleet/{file} is stale: run `osquery-audit-ext packs fleet --key {key} "
        f"packs/*.conf > packs/fleet/{file}`"
    )
    assert f"\n{key}:\n  - name: " in text


@pytest.mark.parametrize("path", PACK_FILES, ids=lambda p: p.name)
def test_every_event_table_query_names_itself_as_consumer(path):
    pack, _ = load_pack(str(path))
    for q in pack.queries:
        if re.search(r"\bFROM\s+(process|socket)_events\b", q.query):
            assert f"consumer = '{q.name}'" in q.query, q.name


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
    assert "0 problem(s), 0 warning(s): ok" in out


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


@pytest.mark.kernel
def test_event_queries_without_consumer_or_time_are_warned_about(tmp_path, capsys):
    from osquery_audit_ext.cli import main

    pack = tmp_path / "loose.conf"
    queries = {
        "everything": {"query": "SELECT pid FROM process_events;"},
        "by_pid": {"query": "SELECT pid FROM process_events WHERE pid = 1;"},
        "windowed": {
            "query": "SELECT pid FROM process_events WHERE time > (SELECT unix_time FROM time) - 60;"
        },
        "consumed": {"query": "SELECT pid FROM process_events WHERE consumer = 'consumed';"},
        "status": {"query": "SELECT enabled FROM audit_status;"},
    }
    pack.write_text(json.dumps({"queries": queries}))
    assert main(["packs", "check", str(pack)]) == 0
    captured = capsys.readouterr()
    warned = sorted(
        line.split(": ")[2] for line in captured.err.splitlines() if line.startswith("warning:")
    )
    assert warned == ["queries.by_pid", "queries.everything"]
    assert "0 problem(s), 2 warning(s): ok" in captured.out
