"""Big buffers reach a fresh child through shared memory (issue 13): no copy in the parent, the
child's array backed by the mapping and copy-on-write, nothing left anywhere after any exit."""

from __future__ import annotations

import os
import pickle
import resource
import signal

import proc_targets
import pytest
from support import open_fds, wait_until

import processing
from processing import buffers

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not buffers.available(), reason="no memfd_create on this system")]

FRESH = ("spawn", "forkserver")
MIB = 1 << 20


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _warm(method: str) -> None:
    """One start first: the fork server and the monitor keep descriptors of their own from then on."""
    p = processing.Process(target=proc_targets.noop, method=method)
    p.start()
    p.join(60)
    p.close()


@pytest.mark.parametrize("method", FRESH)
def test_a_big_array_is_mapped_in_the_child_and_its_writes_stay_there(method: str) -> None:
    np = pytest.importorskip("numpy")
    array = np.ones(64 * MIB // 8)
    _warm(method)
    shm, fds = _shm(), open_fds()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # now about the current RSS
    p = processing.Process(target=proc_targets.report_shared_array, args=(array,), method=method)
    p.start()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
    p.join(60)
    assert p.exitcode == 0
    assert p.messages == [(float(array.size), True, True)]  # the values, writable, backed by the mapping
    assert array[0] == 1.0  # the child's write changed its private copy only
    assert grown < 16 * MIB, f"the parent grew {grown / MIB:.0f} MiB sending 64 MiB"
    p.close()
    assert _shm() == shm and open_fds() == fds  # no name anywhere, no descriptor kept


@pytest.mark.parametrize("method", FRESH)
def test_a_child_killed_at_once_leaves_nothing(method: str) -> None:
    np = pytest.importorskip("numpy")
    data = np.ones(8 * MIB // 8)
    _warm(method)
    shm, fds = _shm(), open_fds()
    p = processing.Process(target=proc_targets.report_shared_array, args=(data,), method=method)
    p.start()
    p.kill()
    p.join(30)
    assert p.exitcode in (0, -signal.SIGKILL)
    p.close()
    assert wait_until(lambda: _shm() == shm and open_fds() == fds)


def test_small_buffers_stay_in_the_pickle() -> None:
    from processing import serialization

    small, large = bytearray(b"s" * 100), bytearray(b"L" * (2 * MIB))
    values = {"small": pickle.PickleBuffer(small), "big": pickle.PickleBuffer(large)}
    data, big = serialization.split(values, buffers.THRESHOLD)
    assert len(big) == 1 and big[0].raw().nbytes == 2 * MIB  # only the big one is left out
    assert len(data) < MIB
    rebuilt = serialization.loads(data, buffers=big)
    assert bytes(rebuilt["small"]) == bytes(small) and bytes(rebuilt["big"]) == bytes(large)


@pytest.mark.parametrize("method", FRESH)
def test_without_shared_memory_buffers_travel_in_the_pickle(method: str, monkeypatch) -> None:
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(buffers, "available", lambda: False)
    array = np.ones(2 * MIB // 8)
    p = processing.Process(target=proc_targets.report_shared_array, args=(array,), method=method)
    p.start()
    p.join(60)
    assert p.exitcode == 0 and p.messages == [(float(array.size), True, False)]  # a copy, not a mapping
    p.close()
