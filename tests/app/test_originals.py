"""The record of kernel state to put back: round trip, and malformed records never raise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from osquery_audit_ext.app.originals import (
    DOCUMENT,
    Originals,
    load_originals,
    save_originals,
)
from osquery_audit_ext.app.state import StateDir

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def test_round_trip_and_empty_record_is_removed(tmp_path):
    with StateDir(tmp_path) as state:
        assert not load_originals(state)
        record = Originals({"backlog_limit": 64, "enabled": 0}, [b"\x01\x02", b"rule"], "k")
        save_originals(state, record)
        assert load_originals(state) == record
        save_originals(state, Originals(key="k"))
        assert state.load(DOCUMENT) is None
        assert not (tmp_path / f"{DOCUMENT}.json").exists()


@given(JSON)
def test_any_document_gives_a_record(document):
    record = Originals.from_document(document)
    assert all(isinstance(v, int) for v in record.settings.values())
    assert all(isinstance(r, bytes) for r in record.rules)


def test_malformed_entries_are_dropped():
    record = Originals.from_document(
        {
            "settings": {"backlog_limit": "64", "enabled": True, "rate_limit": 5},
            "rules": ["zz", "0a"],
        }
    )
    assert record.settings == {"rate_limit": 5}
    assert record.rules == [b"\n"]
