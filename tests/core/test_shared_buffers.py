"""Big buffers reach a fresh child through shared memory (issue 13): no copy in the parent, the
child's array backed by the mapping and copy-on-write, nothing left anywhere after any exit."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import threading

import proc_targets
import psutil
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


class _PeakRss:
    """This process's highest RSS while the block runs (sampled every millisecond), and before it."""

    def __enter__(self) -> _PeakRss:
        self._me = psutil.Process()
        self.base = self.peak = self._me.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self._me.memory_info().rss)

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, self._me.memory_info().rss)


def _buffer_fds() -> list[int]:
    """This process's descriptors of shared buffers' memory files (a parent holds none after a start)."""
    found = []
    for fd in open_fds():
        try:
            if "memfd:processing-buffers" in os.readlink(f"/proc/self/fd/{fd}"):
                found.append(fd)
        except OSError:
            pass  # closed meanwhile
    return found


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
    shm = _shm()
    p = processing.Process(target=proc_targets.report_shared_array, args=(array,), method=method)
    with _PeakRss() as rss:
        p.start()
    grown = rss.peak - rss.base
    p.join(60)
    assert p.exitcode == 0
    assert p.messages == [(float(array.size), True, True)]  # the values, writable, backed by the mapping
    assert array[0] == 1.0  # the child's write changed its private copy only
    assert grown < 16 * MIB, f"the parent grew {grown / MIB:.0f} MiB sending 64 MiB"
    p.close()
    assert not _shm() - shm and _buffer_fds() == []  # no new name anywhere, no descriptor kept


@pytest.mark.parametrize("method", FRESH)
def test_a_child_killed_at_once_leaves_nothing(method: str) -> None:
    np = pytest.importorskip("numpy")
    data = np.ones(8 * MIB // 8)
    _warm(method)
    shm = _shm()
    p = processing.Process(target=proc_targets.report_shared_array, args=(data,), method=method)
    p.start()
    p.kill()
    p.join(30)
    assert p.exitcode in (0, -signal.SIGKILL)
    p.close()
    assert wait_until(lambda: not _shm() - shm and _buffer_fds() == [])


def test_small_buffers_stay_in_the_pickle() -> None:
    from processing import serialization

    small, large = bytearray(b"s" * 100), bytearray(b"L" * (2 * MIB))
    values = {"small": pickle.PickleBuffer(small), "big": pickle.PickleBuffer(large)}
    data, big = serialization.split(values, buffers.THRESHOLD)
    assert len(big) == 1 and big[0].raw().nbytes == 2 * MIB  # only the big one is left out
    assert len(data) < MIB
    rebuilt = serialization.loads(data, buffers=big)
    assert bytes(rebuilt["small"]) == bytes(small) and bytes(rebuilt["big"]) == bytes(large)


def _at_the_descriptor_limit(*_: object) -> int:
    raise OSError(errno.EMFILE, "Too many open files")


@pytest.mark.parametrize("method", FRESH)
@pytest.mark.parametrize("missing", ["no memfd on this system", "no memory file to be had (EMFILE)"])
def test_without_shared_memory_buffers_travel_in_the_pickle(method: str, missing: str, monkeypatch) -> None:
    """Where memory files do not exist (macOS), or none can be made (a parent at its descriptor
    limit), the child still starts: the buffers go in the pickle."""
    np = pytest.importorskip("numpy")
    if missing.startswith("no memfd"):
        monkeypatch.setattr(buffers, "available", lambda: False)
    else:
        monkeypatch.setattr(os, "memfd_create", _at_the_descriptor_limit)
    array = np.ones(2 * MIB // 8)
    p = processing.Process(target=proc_targets.report_shared_array, args=(array,), method=method)
    p.start()
    p.join(60)
    assert p.exitcode == 0 and p.messages == [(float(array.size), True, False)]  # a copy, not a mapping
    p.close()


def _mapped_from_child(array: object) -> bool:
    """Whether ``array``'s memory is a private mapping of a shared-memory file (not a bytes copy)."""
    import mmap

    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


@pytest.mark.parametrize("method", ["fork", *FRESH])
def test_big_values_sent_up_arrive_mapped_equal_and_in_order(method: str) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    _warm(method)
    p = processing.Process(target=proc_targets.send_big_values, args=(64,), method=method)
    with _PeakRss() as rss:
        p.start()
        p.join(60)
        assert wait_until(lambda: len(p.messages) == 3)
    assert p.exitcode == 0
    (tag, array), (frame_tag, frame), last = p.messages
    assert (tag, frame_tag, last) == ("array", "frame", "after")
    assert np.array_equal(array, np.arange(64 * MIB // 8, dtype=np.float64))
    assert _mapped_from_child(array) and array.flags.writeable
    array[0] = -1.0  # copy-on-write: the parent's own page now
    assert array[0] == -1.0
    assert frame["a"].sum() == (1 << 18) * ((1 << 18) - 1) // 2 and frame["b"].sum() == 1 << 18
    expected = pd.DataFrame({"a": np.arange(1 << 18, dtype=np.int64), "b": np.ones(1 << 18)})
    pd.testing.assert_frame_equal(frame, expected)
    # Mapped, not read: a pickled 64 MiB would have cost the parent the bytes read and the array rebuilt.
    grown = rss.peak - rss.base
    assert grown < 16 * MIB, f"the parent grew {grown / MIB:.0f} MiB receiving 64 MiB"
    del array, frame
    p.messages.clear()  # a mapping keeps a descriptor of its file for as long as it lives, before 3.13
    p.close()
    assert _buffer_fds() == []


@pytest.mark.parametrize("method", ["fork", *FRESH])
def test_big_values_sent_down_arrive_mapped_equal_and_in_order(method: str) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    _warm(method)
    array = np.ones(64 * MIB // 8)
    frame = pd.DataFrame({"a": np.arange(1 << 18, dtype=np.int64), "b": np.ones(1 << 18)})
    p = processing.Process(target=proc_targets.report_big_values_from_parent, method=method)
    p.start()
    with _PeakRss() as rss:
        p.sendToChild(("array", array))
        p.sendToChild(("frame", frame))
        p.sendToChild("after")
    grown = rss.peak - rss.base
    assert _buffer_fds() == []  # the socket holds each file until the child takes it
    p.sendToChild("stop")
    p.join(60)
    assert p.exitcode == 0
    assert p.messages == [("array", float(array.size), True, True),  # equal, writable, backed by the mapping
                          ("frame", (1 << 18) * ((1 << 18) - 1) // 2, float(1 << 18)),
                          "after",
                          ("held", 0)]  # the child closed each file once mapped
    assert array[0] == 1.0  # the child's write changed its private copy only
    # Not pickled: a 64 MiB pickle would have cost the parent 64 MiB more while it was sent.
    assert grown < 16 * MIB, f"the parent grew {grown / MIB:.0f} MiB sending 64 MiB"
    p.close()


@pytest.mark.parametrize("method", FRESH)
def test_a_big_send_to_a_child_that_is_gone_leaves_nothing(method: str) -> None:
    np = pytest.importorskip("numpy")
    array = np.ones(8 * MIB // 8)
    p = processing.Process(target=proc_targets.noop, method=method)
    with pytest.raises(processing.ProcessStateError, match="not been started"):
        p.sendToChild(array)
    p.start()
    p.join(60)
    with pytest.raises(processing.ProcessStateError, match="has exited"):
        p.sendToChild(array)
    assert _buffer_fds() == []
    p.close()


@pytest.mark.parametrize("method", FRESH)
def test_a_child_killed_after_sending_big_values_leaves_nothing(method: str) -> None:
    _warm(method)
    shm = _shm()
    fds = set(open_fds())
    p = processing.Process(target=proc_targets.send_big_then_wait, args=(8,), method=method)
    p.start()
    assert wait_until(lambda: len(p.messages) == 1, limit=60)
    assert len(p.messages[0]) == 8 * MIB
    p.kill()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    p.messages.clear()
    p.close()
    assert wait_until(lambda: not _shm() - shm and _buffer_fds() == [] and set(open_fds()) <= fds)


def _holders_of_buffers() -> list[int]:
    """Every process but this one that maps or holds a shared-buffers file."""
    holders = []
    for pid in psutil.pids():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/maps") as maps:
                mapped = "memfd:processing-buffers" in maps.read()
            held = any("memfd:processing-buffers" in os.readlink(f"/proc/{pid}/fd/{fd}")
                       for fd in os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if mapped or held:
            holders.append(pid)
    return holders


@pytest.mark.parametrize("method", FRESH)
def test_a_parent_killed_while_it_sends_leaves_nothing(method: str) -> None:
    """SIGKILL to the parent while it writes 512 MiB into the shared-memory file: the file has no
    name, so once the parent, its fork server and the child are gone, nothing holds the memory."""
    pytest.importorskip("numpy")
    import subprocess
    import sys
    import time

    shm = _shm()
    code = (
        "import sys, numpy as np, processing\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import proc_targets\n"
        f"p = processing.Process(target=proc_targets.noop, method={method!r})\n"
        "p.start(); p.join()\n"  # the fork server is up: the next start spends its time sending
        "big = np.ones(512 << 17)\n"
        f"p = processing.Process(target=proc_targets.report_shared_array, args=(big,), method={method!r})\n"
        "print('sending', flush=True)\n"
        "p.start()\n"
        "print('started', flush=True)\n"
        "p.join()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, os.path.dirname(proc_targets.__file__)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline() == "sending\n"
        family = psutil.Process(parent.pid).children(recursive=True)
        time.sleep(0.02)
        parent.kill()
        rest = parent.stdout.read()
    finally:
        parent.kill()
        parent.wait(30)
    assert "started" not in rest, "the start ended before the kill: nothing was killed mid-send"
    assert wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family))
    assert wait_until(lambda: _holders_of_buffers() == [])
    assert not _shm() - shm
