"""Faults found with minimal scripts (issue 14): each test fails without its fix.

Descriptors that leak into unrelated children, a fork server that dies, a
SIGCHLD policy in the parent, failed starts at the descriptor limit, output a
fork duplicates, forked copies of a child or of the parent, partial lines,
the parent's state at start under the fork server, and a few smaller ones.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import weakref

import fault_targets
import proc_targets
import pytest
from support import HERE, Output, fork_server_pid, pid_gone, run_python, wait_until

import processing

pytestmark = pytest.mark.timeout(120)


# -- no descriptor of ours leaks into another child -------------------------------------------


@pytest.mark.slow
def test_a_join_does_not_wait_for_an_unrelated_child(tmp_path) -> None:
    """Fails before: a fork child started from another thread inherited a fork server child's status
    pipe in the making, and the status was read until EOF: join() stalled for the fork child's life."""
    cue = str(tmp_path / "cue")
    stop = threading.Event()
    forked: list[processing.Process] = []

    def fork_children() -> None:
        while not stop.is_set() and len(forked) < 200:
            child = processing.Process(target=proc_targets.wait_for_file, args=(cue,), method="fork")
            child.start()
            forked.append(child)

    thread = threading.Thread(target=fork_children)
    thread.start()
    worst = 0.0
    try:
        for _ in range(60):
            began = time.monotonic()
            p = processing.Process(target=proc_targets.noop, method="forkserver")
            p.start()
            p.join(30)
            worst = max(worst, time.monotonic() - began)
            assert p.exitcode == 0
    finally:
        stop.set()
        thread.join()
        open(cue, "w").close()
        for child in forked:
            child.join(30)
    assert worst < 3.0, f"a start+join took {worst:.1f} s"


def test_a_closed_and_dropped_process_is_freed(method: str) -> None:
    """Fails before: the monitor thread's loop variable held the last child's process object."""
    p = processing.Process(target=proc_targets.noop, method=method, output=Output())
    p.start()
    p.join(30)
    p.close()
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert wait_until(lambda: (gc.collect(), ref())[1] is None, 5), gc.get_referrers(ref())


FD_PRESSURE = r"""
import os, resource, sys
import processing
method = sys.argv[1]
def fds():
    return len(os.listdir('/proc/self/fd'))
for _ in range(2):  # warm up: what is made once (the fork server, the monitor, the alive pipe)
    p = processing.Process(target=int, method=method, output=lambda s, d: None)
    p.start(); p.join(); p.close()
before = fds()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
errors = set()
for free in range(0, 12):
    resource.setrlimit(resource.RLIMIT_NOFILE, (before + free, hard))
    try:
        for i in range(5):
            p = processing.Process(target=int, method=method, output=lambda s, d: None)
            p.start(); p.join(); p.close()
    except Exception as error:
        errors.add(type(error).__name__)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if fds() != before:
        print("LEAK", free, before, fds(), os.listdir('/proc/self/fd'))
        break
print("errors", sorted(errors))
"""


@pytest.mark.slow
def test_failed_starts_leak_no_descriptor_and_say_why(method: str) -> None:
    """Fails before: 5 failed starts took 9 -> 18 descriptors, and fork failed with an ImportError."""
    result = run_python(FD_PRESSURE, method, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LEAK" not in result.stdout, result.stdout
    assert "errors ['OSError']" in result.stdout, result.stdout


def test_the_control_channel_is_not_inherited_by_exec(method: str) -> None:
    """Fails before: under spawn and forkserver a program the child ran held its control channel."""
    p = processing.Process(target=fault_targets.report_inherited_by_exec, method=method)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    [(channel_fd, inherited)] = p.messages
    assert channel_fd not in inherited


# -- the fork server's death ---------------------------------------------------------------------


def test_children_die_with_the_fork_server_and_the_next_start_works() -> None:
    """Fails before: after a SIGKILL of the server, its children lived on, orphaned, uncontrolled."""
    p = processing.Process(target=proc_targets.sleep_forever, method="forkserver")
    p.start()
    pid = p.pid
    os.kill(fork_server_pid(), signal.SIGKILL)
    p.join(30)
    assert p.exitcode == 255
    assert wait_until(lambda: pid_gone(pid), 10), "the fork server's child outlived it"
    q = processing.Process(target=proc_targets.noop, method="forkserver")
    q.start()
    q.join(30)
    assert q.exitcode == 0


CRASHING_PRELOAD = r"""
import os, sys
import processing
processing.setForkserverPreload(["crasher"])
outcomes = []
for _ in range(3):
    p = processing.Process(target=int, method="forkserver")
    try:
        p.start()
        p.join(30)
        outcomes.append(p.exitcode)
    except processing.ProcessError as error:
        outcomes.append(str(error))
print(outcomes)
"""


def test_a_preload_that_crashes_the_server_is_reported(tmp_path) -> None:
    """Fails before: every start after it was a silent exit code 255."""
    (tmp_path / "crasher.py").write_text("import os\nos._exit(3)\n")
    result = run_python(CRASHING_PRELOAD, env={"PYTHONPATH": f"{tmp_path}:{HERE}"}, timeout=60)
    assert result.returncode == 0, result.stderr
    outcomes = eval(result.stdout)  # a list of exit codes and messages
    assert all(isinstance(o, str) for o in outcomes), outcomes
    assert "crasher" in outcomes[0] and "exit code 3" in outcomes[0], outcomes[0]


# -- a SIGCHLD policy in the parent ------------------------------------------------------------


SIGCHLD_IGNORED = r"""
import signal, sys
import processing
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for method in ("fork", "spawn"):
    try:
        processing.Process(target=int, method=method).start()
        print(method, "started")
    except processing.ProcessError as error:
        print(method, "refused:", error)
p = processing.Process(target=int, method="forkserver"); p.start(); p.join(30)
print("forkserver", p.exitcode)
"""


def test_an_ignored_sigchld_is_refused_by_fork_and_spawn_naming_the_fix() -> None:
    """Fails before: the child's status was discarded by the kernel, it stayed alive for ever and the
    monitor spun at 100% CPU."""
    result = run_python(SIGCHLD_IGNORED, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line, method in zip(lines[:2], ("fork", "spawn"), strict=True):
        assert line.startswith(f"{method} refused:"), line
        assert "SIG_DFL" in line and "forkserver" in line
    assert lines[2] == "forkserver 0"


REAPING_HANDLER = r"""
import os, signal, time, threading
import processing
def reap(signum, frame):
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
signal.signal(signal.SIGCHLD, reap)
for method in ("fork", "spawn"):
    p = processing.Process(target=int, method=method)
    p.start()
    p.join(30)
    print(method, p.exitcode, p.is_alive())
cpu = time.process_time(); time.sleep(0.5); print("cpu", time.process_time() - cpu)
"""


def test_a_reaping_sigchld_handler_is_reported_and_nothing_spins() -> None:
    result = run_python(REAPING_HANDLER, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line, method in zip(lines[:2], ("fork", "spawn"), strict=True):
        name, code, alive = line.split()
        assert (name, alive) == (method, "False"), line
        assert code in ("0", "255"), line  # 0 if we reaped first, else lost and reported
    assert float(lines[2].split()[1]) < 0.2, "the monitor spins"
    if "255" in result.stdout:
        assert "taken by another wait()" in result.stderr


# -- what a fork copies -----------------------------------------------------------------------


BUFFERED = r"""
import sys
import processing
sys.stdout.write("buffered in the parent\n")  # a pipe: block-buffered, not yet written
p = processing.Process(target=int, method="fork"); p.start(); p.join()
"""


def test_the_fork_method_does_not_duplicate_buffered_output() -> None:
    """Fails before: the child flushed, at its end, a copy of what the parent's stdout held."""
    result = run_python(BUFFERED, env={"PYTHONUNBUFFERED": ""})  # CI may set it: stdout must buffer
    assert result.returncode == 0, result.stderr
    assert result.stdout == "buffered in the parent\n"


def test_an_os_fork_copy_of_a_child_cannot_send_and_the_child_still_can(method: str) -> None:
    """Fails before: the copy's message got through and the child's next one was dropped as forged."""
    p = processing.Process(target=fault_targets.send_fork_then_send, method=method)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert p.messages == ["before the fork", ("the copy's exit code", 0), "after the fork"]


PARENT_COPY = r"""
import os, sys, time, atexit
import processing
sys.path.insert(0, sys.argv[1])
import proc_targets
cue = sys.argv[2]
p = processing.Process(target=proc_targets.wait_for_file, args=(cue,), method=sys.argv[3])
p.start()
pid = os.fork()
if pid == 0:
    children = processing.activeChildren()
    atexit._run_exitfuncs()  # what the copy's normal exit would run
    os._exit(0 if children == [] else 1)
began = time.monotonic()
_, status = os.waitpid(pid, 0)
waited = time.monotonic() - began
open(cue, "w").close()
p.join(30)
print(os.waitstatus_to_exitcode(status), round(waited, 1), p.exitcode)
"""


def test_an_os_fork_copy_of_the_parent_leaves_its_children_alone(method: str, tmp_path) -> None:
    """Fails before: the copy waited for the parent's children at its exit, and under forkserver could
    take the exit status the parent is owed."""
    result = run_python(PARENT_COPY, HERE, str(tmp_path / "cue"), method, timeout=60)
    assert result.returncode == 0, result.stderr
    copy_code, waited, exitcode = result.stdout.split()
    assert copy_code == "0"  # the copy has no children
    assert float(waited) < 5.0
    assert exitcode == "0"


def test_a_partial_line_arrives_while_the_child_runs(method: str) -> None:
    """Fails before: print('x', end='') showed nothing until the next newline or the exit."""
    output = Output()
    p = processing.Process(target=fault_targets.write_partial_then_wait, method=method, output=output)
    p.start()
    try:
        assert wait_until(lambda: output.text("stdout") == "partial", 10), output.chunks
    finally:
        p.sendToChild("seen")
        p.join(30)
    assert output.text("stdout") == "partial line\n"


# -- the parent's state at start ---------------------------------------------------------------


def test_a_child_starts_with_the_callers_environment_umask_and_cwd(method: str, tmp_path,
                                                                  monkeypatch) -> None:
    """Fails before: fork server children had the server's environment and umask, however old."""
    processing.Process(target=proc_targets.noop, method=method).start()  # the server runs already
    for child in processing.activeChildren():
        child.join(30)
    monkeypatch.setenv("PROCESSING_TEST_VARIABLE", "set after the server started")
    monkeypatch.chdir(tmp_path)
    old_mask = os.umask(0o077)
    try:
        p = processing.Process(target=fault_targets.report_umask_environ_cwd,
                               args=("PROCESSING_TEST_VARIABLE",), method=method)
        p.start()
        p.join(30)
    finally:
        os.umask(old_mask)
    assert p.messages == [(0o077, "set after the server started", str(tmp_path))]


# -- smaller ones ------------------------------------------------------------------------------


def test_exit_codes_are_taken_modulo_256() -> None:
    """POSIX keeps 8 bits: sys.exit(256) is 0 (the README says 0-255)."""
    p = processing.Process(target=proc_targets.call_sys_exit, args=(256,), method="fork")
    p.start()
    p.join(30)
    assert p.exitcode == 0


@pytest.mark.skipif(sys.platform != "linux", reason="abstract Unix sockets are Linux's")
def test_a_listener_on_an_abstract_unix_address_works() -> None:
    """Fails before: ValueError: chmod: embedded null character."""
    from processing import connection

    address = f"\0processing-test-{os.getpid()}"
    with connection.Listener(address) as listener:
        p = processing.Process(target=proc_targets.connect_and_send, args=(address, "hello"), method="fork")
        p.start()
        with listener.accept() as conn:
            assert conn.recv() == "hello"
            conn.send("ack")
        p.join(30)
    assert p.exitcode == 0
