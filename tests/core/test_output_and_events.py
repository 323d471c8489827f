"""Captured output (file-descriptor level, in order, nothing lost) and lifecycle events."""

from __future__ import annotations

import io
import os
import signal
import threading

import proc_targets
import pytest
from support import Events, Output, monitor_settled, pid_gone, run_python, wait_until

import processing

pytestmark = pytest.mark.timeout(60)


def run(method: str, target, *args: object, **kwargs: object) -> processing.Process:
    p = processing.Process(target=target, args=args, method=method, **kwargs)
    p.start()
    p.join()
    return p


# -- output capture -------------------------------------------------------------------


def test_output_at_every_level_is_captured(method: str, output: Output) -> None:
    p = run(method, proc_targets.write_everywhere, output=output)
    assert p.exitcode == 0
    out, err = output.text("stdout"), output.text("stderr")
    assert out.splitlines() == [
        "print to stdout",
        "os.write to fd 1",
        "puts from C",
        "echo from a grandchild",
    ]
    assert err.splitlines() == ["print to stderr", "os.write to fd 2", "grandchild stderr"]
    assert output.streams == {"stdout", "stderr"}


def test_order_within_a_stream_is_kept(method: str, output: Output) -> None:
    p = run(method, proc_targets.write_lines, 1000, output=output)
    assert p.exitcode == 0
    assert output.text("stdout") == "".join(f"line {i}\n" for i in range(1000))
    assert output.data("stderr") == b""


@pytest.mark.timeout(90)
def test_nothing_is_lost_in_a_flood(method: str, output: Output) -> None:
    size = 5 * 1024 * 1024
    p = run(method, proc_targets.write_bytes, size, output=output)
    assert p.exitcode == 0
    data = output.data("stdout")
    assert len(data) == size
    assert data == (bytes(range(256)) * (size // 256))


def test_last_bytes_before_sigkill_arrive(method: str, output: Output) -> None:
    p = run(method, proc_targets.write_then_sigkill, output=output)
    assert p.exitcode == -signal.SIGKILL
    assert output.data("stdout") == b"last words\n"
    assert output.data("stderr") == b"last error\n"


@pytest.mark.parametrize("signum", [None, signal.SIGKILL], ids=["return", "sigkill"])
def test_a_burst_written_just_before_exit_is_delivered_before_join_returns(
    method: str, output: Output, signum: int | None
) -> None:
    size = 1 << 20
    exited_with = []
    with processing.subscribe(exited=lambda p, code: exited_with.append((p, len(output.data("stdout"))))):
        p = run(method, proc_targets.burst_then_die, size, signum, output=output)
    assert p.exitcode == (0 if signum is None else -signum)
    assert len(output.data("stdout")) == size
    assert output.data("stdout") == bytes(range(256)) * (size // 256)
    assert (p, size) in exited_with  # all of it was there when exited fired


def test_output_to_a_text_stream(method: str) -> None:
    stream = io.StringIO()
    p = run(method, proc_targets.write_split_utf8, output=stream)
    assert p.exitcode == 0
    assert stream.getvalue() == "h\u00e9llo \u20ac\n"  # a character split across reads is kept whole


def test_output_to_a_text_stream_gets_both_streams(method: str) -> None:
    stream = io.StringIO()
    p = run(method, proc_targets.raise_value_error, "into the stream", output=stream)
    assert p.exitcode == 1
    assert f"Process {p.name}:" in stream.getvalue()
    assert "ValueError: into the stream" in stream.getvalue()


def test_output_is_delivered_before_join_returns_and_before_exited(method: str) -> None:
    seen_at_exit = []
    output = Output()
    subscription = processing.subscribe(
        exited=lambda p, code: seen_at_exit.append((p, output.data("stdout")))
    )
    try:
        p = run(method, proc_targets.write_lines, 200, output=output)
    finally:
        subscription.cancel()
    expected = "".join(f"line {i}\n" for i in range(200)).encode()
    assert output.data("stdout") == expected
    assert (p, expected) in seen_at_exit


def test_uncaptured_output_goes_to_the_parents_descriptors(
    method: str, capfd: pytest.CaptureFixture[str]
) -> None:
    p = run(method, proc_targets.write_everywhere)
    assert p.exitcode == 0
    captured = capfd.readouterr()
    for line in ("print to stdout", "os.write to fd 1", "puts from C", "echo from a grandchild"):
        assert line in captured.out
    for line in ("print to stderr", "os.write to fd 2", "grandchild stderr"):
        assert line in captured.err


def test_output_of_many_children_stays_apart(method: str) -> None:
    outputs = [Output() for _ in range(4)]
    processes = [
        processing.Process(target=proc_targets.write_lines, args=(100 + i,), method=method, output=outputs[i])
        for i in range(4)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    for i, output in enumerate(outputs):
        assert output.text("stdout") == "".join(f"line {n}\n" for n in range(100 + i))


def test_join_returns_when_a_grandchild_keeps_the_output_pipe_open(method: str, output: Output) -> None:
    """A background grandchild inherits the pipe; the child's exit must still end join()."""
    script = "import os, processing; os.system('sleep 30 & echo $! ; echo started')"
    p = processing.Process(target=exec, args=(script,), method=method, output=output)
    p.start()
    p.join(30)
    try:
        assert p.exitcode == 0
        assert "started" in output.text("stdout")
    finally:
        pid_text = output.text("stdout").split()[0] if output.text("stdout") else ""
        if pid_text.isdigit():
            try:
                os.kill(int(pid_text), signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- lifecycle events -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "args", "code"),
    [
        (proc_targets.noop, (), 0),
        (proc_targets.call_sys_exit, (3,), 3),
        (proc_targets.raise_value_error, ("x",), 1),
        (proc_targets.die_by_signal, (signal.SIGSEGV,), -signal.SIGSEGV),
    ],
    ids=["zero", "three", "exception", "sigsegv"],
)
def test_started_and_exited_events(method: str, events: Events, target, args, code: int) -> None:
    p = processing.Process(target=target, args=args, method=method, output=Output())
    p.start()
    assert events.of(p)[:1] == [("started", None)]  # fired before start() returned (exited may follow)
    p.join()
    assert events.of(p) == [("started", None), ("exited", code)]
    assert p.exitcode == code


def test_exited_fires_without_join(method: str) -> None:
    fired = threading.Event()
    codes = []

    def on_exit(process: processing.Process, code: int) -> None:
        if process is p:
            codes.append(code)
            fired.set()

    with processing.subscribe(exited=on_exit):
        p = processing.Process(target=proc_targets.call_sys_exit, args=(4,), method=method)
        p.start()
        assert fired.wait(30)
    assert codes == [4]
    p.join()
    assert codes == [4]  # exactly once


def test_exited_reports_terminate(method: str, events: Events) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    p.terminate()
    assert events.wait_for(p, "exited")
    assert events.of(p) == [("started", None), ("exited", -signal.SIGTERM)]
    p.join()


def test_started_receives_the_process_with_its_pid(method: str) -> None:
    seen = []
    with processing.subscribe(started=lambda process: seen.append((process, process.pid, process.isAlive()))):
        p = processing.Process(target=proc_targets.noop, method=method)
        p.start()
    p.join()
    [(_, pid, _alive)] = [entry for entry in seen if entry[0] is p]
    assert isinstance(pid, int) and pid == p.pid


def test_cancel_stops_events(method: str) -> None:
    log = []
    subscription = processing.subscribe(started=lambda p: log.append(("started", p)),
                                        exited=lambda p, c: log.append(("exited", p)))
    first = run(method, proc_targets.noop)
    assert [event for event, p in log if p is first] == ["started", "exited"]
    subscription.cancel()
    second = run(method, proc_targets.noop)
    assert [event for event, p in log if p is second] == []
    subscription.cancel()  # cancelling twice is harmless


def test_subscription_as_context_manager(method: str) -> None:
    log = []
    with processing.subscribe(exited=lambda p, c: log.append(p)) as subscription:
        assert isinstance(subscription, processing.Subscription)
        inside = run(method, proc_targets.noop)
    outside = run(method, proc_targets.noop)
    assert inside in log
    assert outside not in log


def test_a_failing_subscriber_does_not_break_the_others(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = []

    def broken_started(process: processing.Process) -> None:
        raise RuntimeError("broken started subscriber")

    def broken_exited(process: processing.Process, code: int) -> None:
        raise RuntimeError("broken exited subscriber")

    before = processing.subscribe(started=broken_started, exited=broken_exited)
    good = processing.subscribe(started=lambda p: log.append(("started", p)),
                                exited=lambda p, c: log.append(("exited", p, c)))
    after = processing.subscribe(started=broken_started, exited=broken_exited)
    try:
        p = processing.Process(target=proc_targets.call_sys_exit, args=(2,), method=method)
        p.start()  # does not raise
        p.join()
        q = run(method, proc_targets.noop)  # the machinery still works afterwards
    finally:
        for subscription in (before, good, after):
            subscription.cancel()
    assert [entry for entry in log if entry[1] is p] == [("started", p), ("exited", p, 2)]
    assert [entry for entry in log if entry[1] is q] == [("started", q), ("exited", q, 0)]
    assert p.exitcode == 2 and q.exitcode == 0
    reported = [record for record in caplog.records if record.name == "processing"]
    errors = [str(record.exc_info[1]) for record in reported if record.exc_info]
    assert "broken started subscriber" in errors
    assert "broken exited subscriber" in errors


def test_exited_fires_even_when_the_last_message_cannot_be_loaded(events: Events, tmp_path) -> None:
    """Make the monitor read the child's last (unloadable) message while handling its exit.

    The monitor thread is held in an output callback of another child while a
    fork-server child, once registered, sends its message and exits; its
    sentinel (readable since the server wrote the pid) is then normally queued
    before its channel, so the exit handler is the one that reads the message.
    That order is up to the kernel, so the scenario is tried five times.
    """
    from multiprocessing.connection import wait

    for attempt in range(5):
        gate, held = threading.Event(), threading.Event()

        def hold(stream: str, data: bytes, gate=gate, held=held) -> None:
            held.set()
            gate.wait(30)

        holder = processing.Process(target=print, args=("hold",), method="fork", output=hold)
        holder.start()
        try:
            assert held.wait(30)
            cue = str(tmp_path / f"cue{attempt}")
            p = processing.Process(target=proc_targets.send_unloadable, args=(cue,), method="forkserver")
            p.start()
            open(cue, "w").close()
            assert wait_until(lambda p=p: pid_gone(p.pid))
            assert wait([p.sentinel], timeout=30)
        finally:
            gate.set()
        p.join()
        holder.join()
        monitor_settled()
        assert p.exitcode == 0
        assert events.of(p)[-1:] == [("exited", 0)], f"attempt {attempt + 1}"


BROKEN_STDERR_SCRIPT = """
import sys
import processing

class BrokenStream:  # like a stderr whose descriptor was closed (a daemon, a dead terminal)
    def write(self, text):
        raise OSError(9, "Bad file descriptor")
    def flush(self):
        raise OSError(9, "Bad file descriptor")

def bad_subscriber(process, code):
    raise RuntimeError("a subscriber fails")

seen = []
processing.subscribe(exited=bad_subscriber)
processing.subscribe(exited=lambda p, code: seen.append(p.name))
real_stderr, sys.stderr = sys.stderr, BrokenStream()
first = processing.Process(target=int)
first.start()
first.join(10)
sys.stderr = real_stderr
second = processing.Process(target=int)
second.start()
second.join(3)  # with a dead monitor thread this gives up after 3 s (without a timeout: never returns)
print(first.exitcode, second.exitcode, seen == [first.name, second.name])
"""


def test_the_monitor_survives_a_failing_subscriber_when_stderr_is_broken() -> None:
    result = run_python(BROKEN_STDERR_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", "True"]


def test_message_events(method: str, events: Events) -> None:
    p = run(method, proc_targets.send, "a", {"b": 2}, [3])
    assert p.messages == ["a", {"b": 2}, [3]]
    assert events.of(p) == [("started", None), ("message", "a"), ("message", {"b": 2}),
                            ("message", [3]), ("exited", 0)]


def test_events_for_children_started_concurrently(method: str, events: Events) -> None:
    processes = [processing.Process(target=proc_targets.call_sys_exit, args=(i,), method=method)
                 for i in range(6)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    for i, p in enumerate(processes):
        assert events.of(p) == [("started", None), ("exited", i)]
