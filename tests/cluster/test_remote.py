"""RemoteProcess against a real Dask LocalCluster: worker processes on loopback, real children on them.

The session's cluster (tests/cluster/conftest.py) runs in a helper process, as a
real one runs elsewhere: its workers (and the resource tracker ``multiprocessing``
starts for them) are not children of the test process, so they cannot outlive the
session, and the workers see only what is installed, not the test modules: every
target here is a closure or a lambda, sent by value.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import operator
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import support
from cluster_support import WORKERS, Cluster
from support import Events, Output, pid_gone, run_python, wait_until

import processing
from processing import serialization
from processing._fd import read_exact
from processing.remote import RemoteProcess, SchedulerUnreachableError, get_client, protocol
from processing.remote import relay as relay_module
from processing.remote import wire as wire_module
from processing.remote import worker as worker_module
from processing.remote.wire import HELLO_SIZE, NONCE_SIZE, Credentials, Wire

pytestmark = pytest.mark.timeout(60)


def test_output_arrives_live_while_the_remote_child_runs(cluster: Cluster, tmp_path, output: Output) -> None:
    cue = tmp_path / "cue"

    def talk(path: str) -> None:
        print("first", flush=True)
        while not os.path.exists(path):
            time.sleep(0.01)
        print("second", flush=True)

    p = RemoteProcess(target=talk, args=(str(cue),), cluster=cluster.address, output=output)
    assert repr(p) == f"<RemoteProcess({p.name}, initial)>"
    p.start()
    assert wait_until(lambda: b"first" in output.data("stdout"))
    assert p.is_alive() and p.exitcode is None and p.state == "running"
    assert b"second" not in output.data("stdout")
    cue.touch()
    p.join(30)
    assert output.text("stdout") == "first\nsecond\n"
    assert p.exitcode == 0 and p.getExitCode() == 0 and not p.isAlive()
    assert repr(p) == f"<RemoteProcess({p.name}, stopped)>"


@pytest.mark.parametrize(
    ("target", "args", "exitcode", "word"),
    [
        (None, (), 0, "stopped"),
        (lambda: None, (), 0, "stopped"),
        (sys.exit, (3,), 3, "stopped[3]"),
        (operator.truediv, (1, 0), 1, "stopped[1]"),
    ],
    ids=["no target", "returns", "sys.exit(3)", "raises"],
)
def test_exit_codes(cluster: Cluster, output: Output, target: object, args: tuple, exitcode: int,
                    word: str) -> None:
    p = RemoteProcess(target=target, args=args, cluster=cluster.client, output=output)
    p.start()
    p.join(30)
    assert p.exitcode == exitcode and p.state == "stopped"
    assert repr(p) == f"<RemoteProcess({p.name}, {word})>"
    if exitcode == 1:
        stderr = output.text("stderr")
        assert f"Process {p.name}:" in stderr
        assert "Traceback (most recent call last)" in stderr
        assert "ZeroDivisionError: division by zero" in stderr


def test_terminate_stops_the_remote_child(cluster: Cluster) -> None:
    p = RemoteProcess(target=time.sleep, args=(1000,), cluster=cluster.address)
    p.start()
    assert p.wait_running(30)
    assert p.host in cluster.workers()
    assert repr(p) == f"<RemoteProcess({p.name}, started)>"
    remote_pid = p.getPid()
    assert not pid_gone(remote_pid)  # same machine: the child is a real process
    p.terminate()
    assert not p.is_alive()
    assert p.exitcode == -signal.SIGTERM
    assert repr(p) == f"<RemoteProcess({p.name}, stopped[SIGTERM])>"
    assert wait_until(lambda: pid_gone(remote_pid))


def test_kill_stops_a_child_that_ignores_sigterm(cluster: Cluster, output: Output) -> None:
    def stubborn() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(1000)

    p = RemoteProcess(target=stubborn, cluster=cluster.address, output=output)
    p.start()
    assert wait_until(lambda: b"ready" in output.data("stdout"))
    p.kill()
    assert p.exitcode == -signal.SIGKILL and repr(p).endswith("stopped[SIGKILL])>")


def test_terminate_tree_reaches_the_remote_childs_own_children(cluster: Cluster, output: Output) -> None:
    def parent_of_a_sleeper() -> None:
        sleeper = subprocess.Popen(["sleep", "1000"])
        print(sleeper.pid, flush=True)
        sleeper.wait()

    p = RemoteProcess(target=parent_of_a_sleeper, cluster=cluster.address, output=output)
    p.start()
    assert wait_until(lambda: output.data("stdout").endswith(b"\n"))
    grandchild = int(output.text("stdout"))
    p.terminate(tree=True)
    assert p.exitcode == -signal.SIGTERM
    assert wait_until(lambda: pid_gone(grandchild))


def test_callbacks_may_terminate_and_join_their_own_process(cluster: Cluster) -> None:
    joined = threading.Event()

    def on_output(stream: str, data: bytes) -> None:
        p.terminate()  # on the relay thread: sends the command, cannot wait for its own report

    def on_exit(process: object, exitcode: int | None) -> None:
        if process is p:
            p.join()  # on the thread that reports the exit: returns at once
            joined.set()

    p = RemoteProcess(target=lambda: print("go", flush=True) or time.sleep(1000), cluster=cluster.address,
                      output=on_output)
    with processing.subscribe(exited=on_exit):
        p.start()
        p.join(30)
    assert p.exitcode == -signal.SIGTERM and joined.is_set()


def test_sendtoparent_values_and_events_come_back(cluster: Cluster, events: Events) -> None:
    factor = 7

    def compute() -> None:
        processing.sendToParent({"answer": 6 * factor})
        processing.sendToParent(lambda: "by value")

    p = RemoteProcess(target=compute, cluster=cluster.address)
    p.start()
    assert events.of(p) == [("started", None)]  # on the starting thread, as for a local child
    p.join(30)
    assert p.exitcode == 0
    assert p.messages[0] == {"answer": 42} and p.messages[1]() == "by value"
    assert [event for event, _ in events.of(p)] == ["started", "message", "message", "exited"]
    assert events.of(p)[-1] == ("exited", 0)


def test_what_a_child_says_at_once_arrives_after_its_pid(cluster: Cluster) -> None:
    """A message or output written before the worker reported ``running`` is held back until it did."""
    seen: list[tuple[str, int | None]] = []

    def at_once() -> None:
        processing.sendToParent("first thing")
        print("printed at once", flush=True)

    p = RemoteProcess(target=at_once, cluster=cluster.address,
                      output=lambda stream, data: seen.append(("output", p.pid)))
    def on_message(process: object, obj: object) -> None:
        if process is p:
            seen.append(("message", p.pid))

    subscription = processing.subscribe(message=on_message)
    try:
        p.start()
        p.join(30)
    finally:
        subscription.cancel()
    assert p.exitcode == 0 and p.messages == ["first thing"]
    assert p.pid is not None
    assert sorted(seen) == [("message", p.pid), ("output", p.pid)]  # neither came while pid was None


def test_preload_makes_the_workers_fork_server_keep_a_module(cluster: Cluster) -> None:
    """With ``preload=``, the module is in the child before its target runs, imported by the fork server."""

    def loaded() -> None:
        processing.sendToParent("colorsys" in sys.modules)

    def run(**options: object) -> object:
        p = RemoteProcess(target=loaded, cluster=cluster.address, workers=worker, **options)
        p.start()
        p.join(30)
        assert p.exitcode == 0, p.failure
        return p.messages[0]

    worker = sorted(cluster.client.scheduler_info()["workers"])[0]
    assert run() is False  # nothing imported it yet
    assert run(preload=["colorsys"]) is True
    assert run() is True  # it stays, for any later child on that worker


def test_a_closure_and_a_lambda_travel_by_value(cluster: Cluster, output: Output) -> None:
    secret = "made in the notebook"
    shout = lambda text: text.upper()  # noqa: E731 - a lambda is the point

    p = RemoteProcess(target=lambda: print(shout(secret)), cluster=cluster.address, output=output)
    p.start()
    p.join(30)
    assert p.exitcode == 0 and output.text("stdout") == "MADE IN THE NOTEBOOK\n"


def test_a_target_the_workers_cannot_import_fails_like_a_target(cluster: Cluster, output: Output) -> None:
    p = RemoteProcess(target=support.wait_until, args=(bool,), cluster=cluster.address, output=output)
    p.start()  # by reference: the workers do not have the tests' modules
    p.join(30)
    assert p.exitcode == 1 and "ModuleNotFoundError: No module named 'support'" in output.text("stderr")


def test_importing_processing_and_its_remote_module_does_not_import_dask() -> None:
    result = run_python("""
        import sys
        import processing, processing.remote
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "tornado")))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_workers_are_daemonic_and_still_start_children(cluster: Cluster) -> None:
    def stdlib_child() -> None:
        multiprocessing.get_context("spawn").Process(target=print).start()

    assert all(cluster.client.run(lambda: multiprocessing.current_process().daemon).values())
    with pytest.raises(AssertionError, match="daemonic processes are not allowed to have children"):
        cluster.client.submit(stdlib_child, pure=False).result(30)
    p = RemoteProcess(target=os.getpid, cluster=cluster.address)
    p.start()
    p.join(30)
    assert p.exitcode == 0 and p.pid not in cluster.client.run(os.getpid).values()


def test_a_dead_worker_makes_the_handle_lost(cluster: Cluster, events: Events) -> None:
    p = RemoteProcess(target=time.sleep, args=(1000,), cluster=cluster.address)
    p.start()
    assert p.wait_running(30)
    worker, remote_pid = p.host, p.pid
    os.kill(cluster.worker_pid(worker), signal.SIGKILL)
    p.join(30)
    assert p.state == "lost" and not p.is_alive() and p.exitcode is None
    assert repr(p) == f"<RemoteProcess({p.name}, lost)>"
    assert worker in p.failure and "died" in p.failure
    assert events.of(p)[-1] == ("exited", None)
    assert wait_until(lambda: pid_gone(remote_pid))  # the worker's fork server killed it
    assert wait_until(lambda: worker not in cluster.workers() and len(cluster.workers()) == WORKERS)
    # (the nanny has started a new worker, and the scheduler has forgotten the dead one)


def test_a_remote_child_stops_when_its_notebook_dies(cluster: Cluster) -> None:
    notebook = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from processing.remote import RemoteProcess
            p = RemoteProcess(target=time.sleep, args=(1000,), cluster={cluster.address!r})
            p.start()
            p.wait_running(30)
            print(p.pid, flush=True)
            time.sleep(1000)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        remote_pid = int(notebook.stdout.readline())  # type: ignore[union-attr]
        assert not pid_gone(remote_pid)
    finally:
        notebook.kill()
        notebook.wait()
    assert wait_until(lambda: pid_gone(remote_pid))


def test_an_unreachable_scheduler_is_named_and_nothing_starts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"  # nobody listens there once closed
    p = RemoteProcess(target=print, cluster=address, connect_timeout=1)
    with pytest.raises(SchedulerUnreachableError, match=f"Dask scheduler at {address}") as caught:
        p.start()
    assert isinstance(caught.value, ConnectionError) and isinstance(caught.value, processing.ProcessError)
    assert p.state == "initial" and repr(p) == f"<RemoteProcess({p.name}, initial)>"


def test_an_unpicklable_argument_is_named_before_anything_is_submitted() -> None:
    p = RemoteProcess(target=print, args=("fine", threading.Lock()), cluster="tcp://127.0.0.1:1")
    with pytest.raises(processing.TargetPicklingError, match=r"its args\[1\], <unlocked _thread.lock"):
        p.start()  # raised before the (unreachable) scheduler is contacted
    assert p.state == "initial"


def test_a_wrong_key_is_refused_by_the_notebook(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    with cluster.busy():
        p = RemoteProcess(target=os.getpid, cluster=cluster.address)
        p.start()
        assert p.state == "pending" and p.pid is None and p.host is None
        for key in (b"not the key", processing.currentProcess().authkey):  # the one-time key only
            impostor = Wire.connect(p.listen_address, key, os.urandom(NONCE_SIZE))
            with pytest.raises((EOFError, ConnectionError)):
                impostor.recv()  # the notebook closed the connection without a word
            impostor.close()
    p.join(30)
    assert p.exitcode == 0  # the refused attempts did not disturb the real worker
    err = "\n".join(record.getMessage() for record in caplog.records if record.name == "processing")
    assert err.count(f"{p.name} refused a connection") == 2 and "failed its HMAC check" in err


def test_a_wrong_key_is_refused_by_the_worker(cluster: Cluster, tmp_path) -> None:
    ran = tmp_path / "ran"
    challenge = os.urandom(NONCE_SIZE)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        task = cluster.client.submit(
            worker_module.serve, listener.getsockname(), Credentials(b"the worker's key", challenge),
            pure=False,
        )
        sock, _ = listener.accept()
        hello = sock.recv(64, socket.MSG_WAITALL)  # the worker's nonce, and its signature
        impostor = Wire(sock, b"another key", challenge, hello[:NONCE_SIZE], worker=False)
        impostor.send(protocol.Start(serialization.dumps((ran.touch, (), {})), _SETTINGS))
        with pytest.raises(processing.AuthenticationError, match="failed its HMAC check"):
            task.result(30)
        impostor.close()
    assert not ran.exists()


_SETTINGS = protocol.ChildSettings(name="impostor", method=None, capture=False, preload=[])


def _accept(sock: socket.socket, key: bytes, challenge: bytes) -> Wire:
    """The notebook's side of a just-accepted connection: read the worker's hello and check it."""
    return Wire.from_hello(sock, key, challenge, read_exact(sock, HELLO_SIZE, deadline=time.monotonic() + 5))


@pytest.fixture
def wires() -> Iterator[tuple[Wire, Wire]]:
    """A real worker-notebook pair of wires over loopback TCP, the handshake done."""
    key, challenge = os.urandom(32), os.urandom(NONCE_SIZE)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        worker = Wire.connect(listener.getsockname(), key, challenge)
        notebook = _accept(listener.accept()[0], key, challenge)
    yield worker, notebook
    worker.close()
    notebook.close()


def test_the_wire_carries_messages_both_ways(wires: tuple[Wire, Wire]) -> None:
    worker, notebook = wires
    notebook.send(protocol.Start(b"payload", _SETTINGS))
    worker.send(protocol.Running(42, "tcp://w"))
    worker.send(protocol.Exit(0))
    assert worker.recv() == protocol.Start(b"payload", _SETTINGS)
    assert notebook.recv() == protocol.Running(42, "tcp://w")
    assert notebook.recv() == protocol.Exit(0)


@pytest.mark.parametrize("mismatch", ["key", "challenge"])
def test_a_hello_without_the_key_or_for_another_challenge_is_refused(mismatch: str) -> None:
    """Another challenge: a hello recorded from an earlier start, replayed to this one's listener."""
    key, challenge = os.urandom(32), os.urandom(NONCE_SIZE)
    theirs = {"key": (os.urandom(32), challenge), "challenge": (key, os.urandom(NONCE_SIZE))}[mismatch]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        impostor = Wire.connect(listener.getsockname(), *theirs)
        sock = listener.accept()[0]
        with pytest.raises(processing.AuthenticationError, match="from the worker failed its HMAC check"):
            _accept(sock, key, challenge)
        sock.close()
        impostor.close()


def _next_frame(wire: Wire) -> bytes:
    """The raw bytes of the next frame waiting on ``wire``, taken off it without checking them."""
    head = wire.sock.recv(40, socket.MSG_PEEK | socket.MSG_WAITALL)
    return wire.sock.recv(40 + int.from_bytes(head[:8], "big"), socket.MSG_WAITALL)


@pytest.mark.parametrize("attack", ["replayed", "reflected", "altered", "forged"])
def test_a_replayed_reflected_altered_or_forged_message_fails(wires: tuple[Wire, Wire], attack: str) -> None:
    """Each attack differs from a genuine message in one way only, and nothing of it is loaded."""
    worker, notebook = wires
    if attack == "replayed":
        worker.send(protocol.Running(42, "tcp://w"))
        frame = _next_frame(notebook)
        worker.sock.sendall(frame)
        assert notebook.recv() == protocol.Running(42, "tcp://w")  # the genuine frame, once
        worker.sock.sendall(frame)  # and again
        victim = notebook
    elif attack == "reflected":
        notebook.send(protocol.Stop(kill=False, tree=False))
        notebook.send(protocol.Stop(kill=True, tree=False))
        assert worker.recv() == protocol.Stop(kill=False, tree=False)
        worker.sock.sendall(_next_frame(worker))  # the second, sent back: its count is the one expected
        victim = notebook
    elif attack == "altered":
        notebook.send(protocol.Stop(kill=False, tree=False))
        frame = _next_frame(worker)
        notebook.sock.sendall(frame[:-2] + bytes([frame[-2] ^ 1]) + frame[-1:])  # one bit of the body
        victim = worker
    else:
        key, challenge, nonce = os.urandom(32), os.urandom(NONCE_SIZE), os.urandom(NONCE_SIZE)
        Wire(notebook.sock, key, challenge, nonce, worker=False).send(protocol.Stop(kill=True, tree=False))
        victim = worker
    with pytest.raises(processing.AuthenticationError, match="failed its HMAC check"):
        victim.recv()


def test_terminate_while_pending_cancels_the_task(cluster: Cluster, tmp_path, events: Events) -> None:
    ran = tmp_path / "ran"
    with cluster.busy():
        p = RemoteProcess(target=ran.touch, cluster=cluster.address)
        p.start()
        p.terminate()
        assert p.exitcode == -signal.SIGTERM and not p.is_alive() and p.pid is None
    assert [event for event, _ in events.of(p)] == ["started", "exited"]
    cluster.client.submit(lambda: None, pure=False).result(30)  # the workers are free again: a task ran
    assert not ran.exists()


def test_a_process_cannot_start_twice_nor_be_joined_before_start(cluster: Cluster) -> None:
    p = RemoteProcess(target=print, cluster=cluster.address)
    with pytest.raises(processing.ProcessStateError, match="call start"):
        p.join()
    with pytest.raises(processing.ProcessStateError, match="not been started"):
        p.terminate()
    p.start()
    with pytest.raises(processing.ProcessStateError, match="only once"):
        p.start()
    p.join(30)
    assert get_client(cluster.address) is cluster.client  # one client per address


def test_the_sentinel_becomes_readable_once_the_end_was_reported(cluster: Cluster, tmp_path) -> None:
    cue = tmp_path / "cue"

    def wait_for_cue(path: str) -> None:  # a closure: it travels by value
        while not os.path.exists(path):
            time.sleep(0.01)

    p = RemoteProcess(target=wait_for_cue, args=(str(cue),), cluster=cluster.address)
    with pytest.raises(ValueError, match="has not been started"):
        p.sentinel  # noqa: B018 - the property raises
    p.start()
    assert p.wait_running(30)
    assert select.select([p.sentinel], [], [], 0.2)[0] == []
    cue.touch()
    assert select.select([p.sentinel], [], [], 30)[0] == [p.sentinel]
    assert p.state == "stopped" and p.exitcode == 0
    late = RemoteProcess(target=operator.add, args=(1, 2), cluster=cluster.address)
    late.start()
    late.join(30)
    assert select.select([late.sentinel], [], [], 0)[0] == [late.sentinel]  # made after the end: ready
    for process in (p, late):
        process.close()
        with pytest.raises(ValueError, match="is closed"):
            process.sentinel  # noqa: B018


def _trickle(sock: socket.socket, stop: threading.Event, interval: float = 0.1) -> threading.Thread:
    """Send ``sock`` one byte every ``interval`` seconds, as a slow peer does, until it fails or ``stop``."""

    def run() -> None:
        while not stop.wait(interval):
            try:
                sock.sendall(b"x")
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_message_trickled_byte_by_byte_times_out_in_all(wires: tuple[Wire, Wire]) -> None:
    """A deadline bounds the whole read: one byte per read must not renew it."""
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as slow:
        thread = _trickle(slow, stop)
        sock = listener.accept()[0]
        begun = time.monotonic()
        with pytest.raises(TimeoutError, match="bytes expected arrived in time"):
            read_exact(sock, HELLO_SIZE, deadline=begun + 0.5)
        assert time.monotonic() - begun < 1.5
        stop.set()
        thread.join()
        sock.close()


def test_a_slow_connection_neither_delays_the_worker_nor_stays(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer that trickles its hello is dropped at the deadline; one still trickling holds nobody up."""
    monkeypatch.setattr(relay_module, "HELLO_TIMEOUT", 1.0)
    stop = threading.Event()
    with cluster.busy():
        p = RemoteProcess(target=time.sleep, args=(0.1,), cluster=cluster.address)
        p.start()
        dropped, slow = (socket.create_connection(p.listen_address) for _ in range(2))
        connected = time.monotonic()
        threads = [_trickle(sock, stop) for sock in (dropped, slow)]
        dropped.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert dropped.recv(1) == b""
        assert 0.9 < time.monotonic() - connected < 3.0  # though it kept sending
        assert p.state == "pending"
    released = time.monotonic()
    assert p.wait_running(30)
    assert time.monotonic() - released < 1.0  # the slow peer's hello was not awaited first
    stop.set()
    for thread in threads:
        thread.join()
    dropped.close()
    slow.close()
    p.join(30)
    assert p.exitcode == 0
    assert "its hello was not complete within 1.0 s" in caplog.text


def test_the_worker_gives_up_on_a_notebook_that_sends_no_payload(cluster: Cluster) -> None:
    set_timeout = lambda seconds: setattr(worker_module, "START_TIMEOUT", seconds)  # noqa: E731 - by value
    default = worker_module.START_TIMEOUT
    cluster.client.run(set_timeout, 1.0)
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            credentials = Credentials(os.urandom(32), os.urandom(NONCE_SIZE))
            task = cluster.client.submit(worker_module.serve, listener.getsockname(), credentials, pure=False)
            sock, _ = listener.accept()  # and stays silent
            with pytest.raises(TimeoutError, match=r"sent no payload within 1\.0 s"):
                task.result(30)
            sock.close()
    finally:
        cluster.client.run(set_timeout, default)


def _secrets_in(text: str, credentials: Credentials) -> list[str]:
    secrets = (credentials.key, credentials.challenge)
    forms = [form for secret in secrets for form in (repr(secret), secret.hex())] + [credentials.key.decode()]
    return [form for form in forms if form in text]


def test_the_one_time_key_stays_out_of_the_task_and_the_workers_log(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask logs a failed task's arguments (older versions their repr); the key travels in an object that
    hides it, and still pickles as Dask sends it."""
    submitted: list[tuple[Any, ...]] = []
    submit = cluster.client.submit
    spy = lambda *args, **kw: submitted.append(args) or submit(*args, **kw)  # noqa: E731
    monkeypatch.setattr(cluster.client, "submit", spy)
    p = RemoteProcess(target=os.getpid, cluster=cluster.client)
    p.start()
    p.join(30)
    monkeypatch.undo()
    (_, _, credentials), = submitted
    assert isinstance(credentials, Credentials) and len(credentials.key) == 64
    assert _secrets_in(repr(submitted), credentials) == []
    assert pickle.loads(pickle.dumps(credentials)).key == credentials.key
    with socket.create_server(("127.0.0.1", 0)) as closed:
        address = closed.getsockname()  # nobody listens there once it is closed
    task = cluster.client.submit(worker_module.serve, address, credentials, pure=False)
    with pytest.raises(ConnectionRefusedError):
        task.result(30)
    assert wait_until(lambda: task.key in cluster.log.read_text())  # "Compute Failed", with the task
    assert _secrets_in(cluster.log.read_text(), credentials) == []


def test_a_frame_longer_than_the_maximum_is_refused_before_it_is_read(
    wires: tuple[Wire, Wire], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, notebook = wires
    forged_length = (wire_module.MAX_FRAME + 1).to_bytes(8, "big")
    worker.sock.sendall(forged_length + os.urandom(32))  # a header no signature can vouch for yet
    with pytest.raises(processing.AuthenticationError, match="announced 1073741825 bytes, more than"):
        notebook.recv()
    monkeypatch.setattr(wire_module, "MAX_FRAME", 1000)
    with pytest.raises(ValueError, match=r"the Output message pickles to \d+ bytes, more than the 1000 "):
        worker.send(protocol.Output("stdout", b"x" * 2000))  # refused by its sender: its peer would refuse it


def test_objects_sent_to_a_remote_child_arrive_in_order_even_before_a_worker_takes_it(
    cluster: Cluster,
) -> None:
    def echo() -> None:
        while (obj := processing.receiveFromParent(timeout=30)) != "stop":
            processing.sendToParent(("echo", obj))

    with cluster.busy():
        p = RemoteProcess(target=echo, cluster=cluster.address)
        p.start()
        assert p.state == "pending"
        p.sendToChild({"early": 1})  # kept until a worker connects
    assert p.wait_running(30)
    p.send_to_child([2])
    p.sendToChild("stop")
    p.join(30)
    assert p.exitcode == 0 and p.messages == [("echo", {"early": 1}), ("echo", [2])]
    with pytest.raises(processing.ProcessStateError, match="it has ended"):
        p.sendToChild("late")
