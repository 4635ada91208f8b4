"""gc_paused(): the cyclic GC is off inside, nested and across threads, and comes back."""

from __future__ import annotations

import gc
import threading

import pytest

from osquery_audit_ext.sdk.gcpause import gc_paused, gc_pauses


@pytest.fixture
def gc_state():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_pause_disables_and_restores(gc_state):
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
            assert gc_pauses() == 2
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc_pauses() == 0


def test_pause_keeps_a_disabled_gc_disabled(gc_state):
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_pause_restores_on_exception(gc_state):
    gc.enable()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()
    assert gc_pauses() == 0


def test_overlapping_pauses_in_threads_restore_once_the_last_ends(gc_state):
    gc.enable()
    entered = threading.Barrier(3)
    leave_first = threading.Event()
    first_left = threading.Event()
    leave_second = threading.Event()
    seen: list[bool] = []

    def first():
        with gc_paused():
            entered.wait()
            leave_first.wait()
        first_left.set()

    def second():
        with gc_paused():
            entered.wait()
            leave_second.wait()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    entered.wait()
    seen.append(gc.isenabled())
    leave_first.set()
    first_left.wait()
    seen.append(gc.isenabled())  # the second pause still runs
    leave_second.set()
    for thread in threads:
        thread.join()
    assert seen == [False, False]
    assert gc.isenabled()
    assert gc_pauses() == 0
