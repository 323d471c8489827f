"""Fault injection for the core library (issue 5): load, faults in the child, faults in the parent, keys.

Cases already covered elsewhere are not repeated here: exit codes of raise /
sys.exit / os._exit / signals (test_exit_codes.py), a wrong key on a connection,
the 0600 Unix socket and keys in reprs (test_authkey_connection.py), the last
bytes before a self-inflicted SIGKILL (test_output_and_events.py).
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import signal
import threading
import time

import fault_targets
import psutil
import pytest
from support import (
    Output,
    fork_server_pid,
    is_zombie,
    open_fds,
    os_children,
    pid_gone,
    run_python,
    wait_until,
)

import processing

MB = 1 << 20


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not pid_gone(pid)


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- 1. no zombies, no descriptor leaks -----------------------------------------------


EXPECTED_CODES = {"noop": 0, "print": 0, "raise": 1, "os_exit": 3, "segv": -signal.SIGSEGV,
                  "sleep": -signal.SIGTERM}
KINDS = ("noop", "print", "raise", "noop", "os_exit", "segv", "sleep", "print", "noop", "raise")


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0

    def __call__(self, stream: str, data: bytes) -> None:
        with self.lock:
            self.bytes += len(data)


def _warm_up() -> None:
    """Start one child of each kind of machinery, so lazily created, long-lived descriptors
    (the fork server's socket, the monitor's wake-up pipe) exist before the count."""
    for method in ("fork", "spawn", "forkserver"):
        p = processing.Process(target=fault_targets.mixed_workload, args=("print",), method=method,
                               output=_Counter())
        p.start()
        p.join()
        p.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_thousand_processes_leave_no_zombie_and_no_descriptor(capfd) -> None:
    _warm_up()
    gc.collect()
    fds_before = open_fds()
    server = fork_server_pid()
    counter = _Counter()
    total, batch_size = 1000, 50
    seen: dict[tuple[str, str], int] = {}
    for first in range(0, total, batch_size):
        batch = []
        for i in range(first, first + batch_size):
            kind = KINDS[i % len(KINDS)]
            method = "spawn" if i % 25 == 0 else ("fork" if i % 2 else "forkserver")
            capture = counter if (kind in ("print", "raise") or i % 3 == 0) else None
            p = processing.Process(target=fault_targets.mixed_workload, args=(kind,), method=method,
                                   output=capture)
            p.start()
            batch.append((p, kind, method))
        for p, kind, _method in batch:
            if kind == "sleep":
                p.terminate()
        for p, kind, method in batch:
            p.join(60)
            assert p.exitcode == EXPECTED_CODES[kind], (p, kind, method)
            seen[(kind, method)] = seen.get((kind, method), 0) + 1
            p.close()
        del batch
    assert sum(count for (_, method), count in seen.items() if method == "spawn") == 40
    assert {kind for kind, _ in seen} == set(EXPECTED_CODES)
    assert counter.bytes > 0
    assert processing.activeChildren() == []

    # No child of the test process is left, running or unreaped, but the fork server.
    assert wait_until(lambda: not os_children(), 10), [
        (c.pid, "zombie" if is_zombie(c) else "running") for c in os_children()]
    assert fork_server_pid() == server
    children = psutil.Process().children()
    assert [c.pid for c in children] == ([server] if server else [])
    assert not any(is_zombie(c) for c in children)

    # And every descriptor opened for those children is closed again.
    gc.collect()
    assert wait_until(lambda: open_fds() <= fds_before, 10), sorted(open_fds() - fds_before)
    capfd.readouterr()  # the tracebacks of uncaptured crashes


# -- 2. faults in the child -------------------------------------------------------------

METHODS = ("fork", "spawn", "forkserver")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
def test_child_that_closes_its_stdout_and_stderr_exits_zero(method: str, output: Output) -> None:
    p = processing.Process(target=fault_targets.close_std_streams_then_exit, method=method, output=output)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert output.data("stdout") == b"before closing\n"
    assert output.data("stderr") == b"stderr before closing\n"
    assert repr(p).endswith(", stopped)>")
    p.close()


class _Digest:
    """An ``output=`` callback that keeps only the length and SHA-256 of each stream."""

    def __init__(self) -> None:
        self.length = {"stdout": 0, "stderr": 0}
        self.sha = {"stdout": hashlib.sha256(), "stderr": hashlib.sha256()}

    def __call__(self, stream: str, data: bytes) -> None:  # called on the monitor thread only
        self.length[stream] += len(data)
        self.sha[stream].update(data)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("method", METHODS)
def test_a_100_mb_flood_arrives_whole_and_in_order(method: str) -> None:
    total = 100 * MB
    digest = _Digest()
    p = processing.Process(target=fault_targets.flood, args=(total,), method=method, output=digest)
    p.start()
    p.join(150)
    assert p.exitcode == 0
    expected = hashlib.sha256()
    for index in range(total // fault_targets.FLOOD_CHUNK):
        expected.update(fault_targets.flood_chunk(index))
    assert digest.length == {"stdout": total, "stderr": 0}
    assert digest.sha["stdout"].hexdigest() == expected.hexdigest()
    p.close()


def _grandchild_of(method: str, tmp_path, **kwargs: object) -> tuple[processing.Process, int]:
    pid_file = str(tmp_path / f"grandchild-{method}")
    p = processing.Process(target=fault_targets.start_grandchild_then_sleep, args=(pid_file,),
                           method=method, **kwargs)
    p.start()
    assert wait_until(lambda: os.path.exists(pid_file), 30)
    with open(pid_file) as f:
        return p, int(f.read())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
def test_terminate_leaves_grandchildren_as_documented(method: str, tmp_path) -> None:
    p, grandchild = _grandchild_of(method, tmp_path)
    try:
        assert _alive(grandchild)
        p.terminate()
        assert p.exitcode == -signal.SIGTERM
        # Not synchronisation: nothing is to happen here. The pause gives a terminate() that wrongly
        # signalled the grandchild too the time to show it (a signal is not delivered at once).
        time.sleep(0.2)
        assert _alive(grandchild), "the seed's terminate() leaves the child's own children alone"
    finally:
        _kill_pid(grandchild)
    assert wait_until(lambda: not _alive(grandchild), 10)
    p.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("group", [False, True], ids=["walk", "process-group"])
@pytest.mark.parametrize("method", METHODS)
def test_terminate_tree_ends_grandchildren(method: str, group: bool, tmp_path) -> None:
    p, grandchild = _grandchild_of(method, tmp_path, new_process_group=group)
    try:
        p.terminate(tree=True)
        assert p.exitcode == -signal.SIGTERM
        assert wait_until(lambda: not _alive(grandchild), 15), "terminate(tree=True) left the grandchild"
    finally:
        _kill_pid(grandchild)
    p.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
def test_a_child_ignoring_sigterm_survives_terminate_and_dies_by_kill(method: str) -> None:
    p = processing.Process(target=fault_targets.ignore_sigterm, method=method)
    p.start()
    assert wait_until(lambda: p.messages == ["ready"], 30)
    p.terminate()  # returns after its grace period
    assert p.is_alive()
    assert p.exitcode is None
    p.kill()
    assert not p.is_alive()
    assert p.exitcode == -signal.SIGKILL
    assert repr(p).endswith("stopped[SIGKILL])>")
    p.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", METHODS)
def test_bytes_written_before_a_sigkill_mid_write_arrive(method: str, output: Output, tmp_path) -> None:
    cue = str(tmp_path / "cue")
    p = processing.Process(target=fault_targets.write_counted_lines_forever, args=(cue, 2 * MB),
                           method=method, output=output)
    p.start()
    assert wait_until(lambda: os.path.exists(cue), 30)
    with open(cue) as f:
        written_before_cue = int(f.read())
    p.kill()  # while it is still writing
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    data = output.data("stdout")
    assert len(data) >= written_before_cue
    line = len(fault_targets.counted_line(0))
    whole = len(data) // line
    expected = b"".join(fault_targets.counted_line(i) for i in range(whole))
    assert data[: whole * line] == expected, "bytes lost, duplicated or reordered"
    assert fault_targets.counted_line(whole).startswith(data[whole * line:])
    p.close()


# -- 3. faults in the parent ------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_child_that_dies_before_its_control_channel_is_up(method: str, output: Output) -> None:
    """The child cannot load its process object: exit code 1 and the parent is not stuck."""
    p = processing.Process(target=fault_targets.echo, args=(fault_targets.LoadsOnlyInTheParent(),),
                           method=method, output=output)
    p.start()
    p.join(30)
    assert p.exitcode == 1
    assert not p.is_alive()
    assert p.messages == []
    assert repr(p).endswith("stopped[1])>")
    p.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_why_a_child_died_before_its_control_channel_is_in_its_captured_stderr(
        method: str, output: Output) -> None:
    p = processing.Process(target=fault_targets.echo, args=(fault_targets.LoadsOnlyInTheParent(),),
                           method=method, output=output)
    p.start()
    p.join(30)
    assert p.exitcode == 1
    err = output.text("stderr")
    p.close()
    assert "could not load" in err, err
    assert "RuntimeError: this object cannot be loaded in the child" in err, err


# -- 5. security (what test_authkey_connection.py does not already check) ---------------

SECRET = "f" * 8 + "-fault-suite-secret-" + "0123456789abcdef"


def test_main_key_is_32_bytes_drawn_from_secrets() -> None:
    """In a fresh interpreter: the key at import is exactly what ``secrets`` returned for 32 bytes."""
    result = run_python("""
        import secrets
        drawn = []
        real = secrets.token_bytes
        def spy(nbytes=None):
            value = real(nbytes)
            drawn.append((nbytes, value))
            return value
        secrets.token_bytes = spy
        import processing
        key = processing.currentProcess().getAuthKey()
        print(repr(drawn), key)
    """)
    assert result.returncode == 0, result.stderr
    drawn_text, key = result.stdout.rsplit(" ", 1)
    drawn = eval(drawn_text)  # a list of (int, bytes) reprs
    assert [n for n, _ in drawn] == [32]
    assert re.fullmatch(r"[0-9a-f]{64}", key.strip())
    assert bytes.fromhex(key.strip()) == drawn[0][1]


def test_the_main_key_is_not_in_the_repr_of_a_started_child() -> None:
    key = processing.currentProcess().getAuthKey()
    p = processing.Process(target=fault_targets.echo, args=(1,))
    texts = [repr(p), str(p)]
    p.start()
    texts.append(repr(p))
    p.join()
    texts += [repr(p), repr(processing.currentProcess()), str(processing.currentProcess())]
    for text in texts:
        assert key not in text
        assert processing.currentProcess().authkey not in text.encode()
    p.close()


def test_a_refused_connection_does_not_show_either_key() -> None:
    from processing import connection

    errors: list[BaseException] = []
    with connection.Listener(authkey=SECRET) as listener:
        def serve() -> None:
            try:
                listener.accept()
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=serve)
        thread.start()
        with pytest.raises(processing.AuthenticationError) as caught:
            connection.Client(listener.address, authkey="the-wrong-key-for-this-listener")
        thread.join(30)
    texts = [str(caught.value), repr(caught.value)] + [str(e) + repr(e) for e in errors]
    for text in texts:
        assert SECRET not in text
        assert "the-wrong-key-for-this-listener" not in text
        assert SECRET.encode().hex() not in text
