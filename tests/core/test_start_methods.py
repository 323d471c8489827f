"""The three start methods: that each really is what it says, interpreter exit, parent death, threads."""

from __future__ import annotations

import os
import sys
import threading

import proc_targets
import pytest
from support import HERE, METHODS, fork_server_pid, pid_gone, run_python, wait_until

import processing

pytestmark = pytest.mark.timeout(60)

PYTHONPATH = {"PYTHONPATH": HERE}


def report_from(method: str | None, **kwargs: object) -> dict:
    p = processing.Process(target=proc_targets.report_identity, method=method, **kwargs)
    p.start()
    p.join()
    assert p.exitcode == 0
    [report] = p.messages
    return report


@pytest.fixture
def marked():
    proc_targets.MARK = "set in the parent at run time"
    yield proc_targets.MARK
    proc_targets.MARK = None


def check_mechanism(method: str, report: dict, mark: str) -> None:
    if method == "fork":
        assert report["mark"] == mark  # a copy of this process
        assert report["ppid"] == os.getpid()
    elif method == "spawn":
        assert report["mark"] is None  # a fresh interpreter
        assert report["ppid"] == os.getpid()
    else:
        assert report["mark"] is None  # forked from the fork server, not from us
        assert report["ppid"] == fork_server_pid() != os.getpid()


def test_method_argument_selects_the_mechanism(method: str, marked: str) -> None:
    p = processing.Process(target=proc_targets.noop, method=method)
    assert p.method == method
    report = report_from(method)
    check_mechanism(method, report, marked)


def test_default_method_is_used_when_none_is_given(method: str, marked: str) -> None:
    processing.setStartMethod(method)
    p = processing.Process(target=proc_targets.report_identity)
    assert p.method is None  # not chosen at construction ...
    p.start()
    assert p.method == method  # ... but at start
    p.join()
    check_mechanism(method, p.messages[0], marked)


def test_method_given_at_construction_wins_over_the_default(method: str, marked: str) -> None:
    other = next(m for m in METHODS if m != method)
    processing.setStartMethod(other)
    report = report_from(method)
    check_mechanism(method, report, marked)


def test_forkserver_is_the_default_in_a_fresh_interpreter() -> None:
    result = run_python("import processing; print(processing.getStartMethod())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in METHODS
    # Whatever the default is, it is one the issue allows; record it.
    assert result.stdout.strip() == "forkserver"


def test_fork_server_is_reused() -> None:
    first = report_from("forkserver")
    server = fork_server_pid()
    second = report_from("forkserver")
    assert first["ppid"] == second["ppid"] == server
    assert first["getpid"] != second["getpid"]


@pytest.mark.parametrize("method", METHODS)
def test_main_module_is_not_rerun_in_children(method: str, tmp_path) -> None:
    """A script's top level runs once, however many children it starts (stdlib spawn re-runs it)."""
    log = tmp_path / "runs.log"
    script = tmp_path / "script.py"
    script.write_text(
        "import os, sys\n"
        "import processing\n"
        f"open({str(log)!r}, 'a').write(f'top level ran in {{os.getpid()}}\\n')\n"
        "def work(i):\n"
        "    processing.sendToParent(i * i)\n"
        "if __name__ == '__main__':\n"
        "    children = [processing.Process(target=work, args=(i,), method=sys.argv[1]) for i in range(3)]\n"
        "    for c in children: c.start()\n"
        "    for c in children: c.join()\n"
        "    print([c.exitcode for c in children], [c.messages for c in children])\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 0, 0] [[0], [1], [4]]"
    assert len(log.read_text().splitlines()) == 1


# -- what happens as a process ends ---------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_at_exit_daemonic_children_are_terminated_and_others_joined(method: str, tmp_path) -> None:
    """The non-daemonic child waits until its daemonic sibling is gone, then writes a file.

    So the file proves both halves: the daemon was terminated (else the child
    would never write), and the main process waited for the non-daemonic child
    (else, as its creator died, the child would have been killed first).
    """
    done = tmp_path / "done"
    result = run_python(
        """
        import sys, time
        import processing, proc_targets

        def wait_for_sibling_to_go_then_write(pid, path):
            import os, time
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except (ProcessLookupError, FileNotFoundError):
                    break
                time.sleep(0.01)
            else:
                sys.exit(3)
            time.sleep(0.2)  # linger a little: only a join() waits for this
            with open(path, "w") as f:
                f.write("written after the daemon had gone")

        method = sys.argv[1]
        daemon = processing.Process(target=proc_targets.sleep_forever, daemon=True, method=method)
        daemon.start()
        worker = processing.Process(target=wait_for_sibling_to_go_then_write,
                                    args=(daemon.pid, sys.argv[2]), method=method)
        worker.start()
        print(daemon.pid, worker.pid, flush=True)
        # fall off the end: no join, no terminate
        """,
        method,
        str(done),
        env=PYTHONPATH,
    )
    assert result.returncode == 0, result.stderr
    daemon_pid, worker_pid = map(int, result.stdout.split())
    assert done.read_text() == "written after the daemon had gone"
    assert wait_until(lambda: pid_gone(daemon_pid))
    assert wait_until(lambda: pid_gone(worker_pid))


def child_of_a_killed_creator(method: str, options: str = "") -> int:
    """Start a sleeping child from a fresh interpreter, SIGKILL that interpreter; the child's pid."""
    result = run_python(
        f"""
        import os, signal, sys
        import processing, proc_targets
        p = processing.Process(target=proc_targets.sleep_forever, method=sys.argv[1]{options})
        p.start()
        print(p.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        method,
        env=PYTHONPATH,
    )
    assert result.returncode == -9
    return int(result.stdout)


@pytest.mark.parametrize("method", METHODS)
def test_children_die_when_their_creator_is_killed(method: str) -> None:
    child = child_of_a_killed_creator(method)
    assert wait_until(lambda: pid_gone(child)), f"child {child} outlived its SIGKILLed creator"


@pytest.mark.parametrize("method", METHODS)
def test_a_group_leaders_own_children_die_with_its_killed_creator(method: str, tmp_path) -> None:
    """Fails before: the child died by PDEATHSIG (or the fork server's kill) and its subprocess lived on."""
    pid_file = tmp_path / "grandchild"
    result = run_python(
        """
        import os, signal, sys
        import processing, fault_targets
        p = processing.Process(target=fault_targets.start_grandchild_then_sleep, args=(sys.argv[2],),
                               method=sys.argv[1], new_process_group=True)
        p.start()
        while not os.path.exists(sys.argv[2]):
            pass
        print(p.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        method,
        str(pid_file),
        env=PYTHONPATH,
    )
    assert result.returncode == -9, result.stderr
    child, grandchild = int(result.stdout), int(pid_file.read_text())
    try:
        assert wait_until(lambda: pid_gone(child)), f"child {child} outlived its SIGKILLed creator"
        assert wait_until(lambda: pid_gone(grandchild)), f"the child's subprocess {grandchild} lived on"
    finally:
        for pid in (child, grandchild):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("method", METHODS)
def test_a_detached_child_outlives_its_creator(method: str) -> None:
    # output= so that the child does not hold the script's stdout open (subprocess.run waits for EOF)
    child = child_of_a_killed_creator(method, ", detached=True, output=lambda stream, data: None")
    try:
        # Not synchronisation: nothing is to happen here. The pause gives a parent-death guard that
        # should not be there (a signal, the watchdog, the fork server's clean-up) every chance to act.
        import time

        time.sleep(0.5)
        assert not pid_gone(child)
    finally:
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass


# -- threads -----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_starting_from_several_threads_at_once(method: str) -> None:
    processes = [
        processing.Process(target=proc_targets.send, args=(i,), method=method) for i in range(20)
    ]
    barrier = threading.Barrier(4)
    errors = []

    def starter(mine: list[processing.Process]) -> None:
        try:
            barrier.wait()
            for p in mine:
                p.start()
            for p in mine:
                p.join()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=starter, args=(processes[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(80)
    assert errors == []
    assert [p.exitcode for p in processes] == [0] * 20
    assert [p.messages for p in processes] == [[i] for i in range(20)]
    assert len({p.pid for p in processes}) == 20
    assert len({p.name for p in processes}) == 20
    assert processing.activeChildren() == []


def test_mixed_methods_from_several_threads(marked: str) -> None:
    processes = [
        processing.Process(target=proc_targets.report_identity, method=METHODS[i % 3]) for i in range(12)
    ]
    threads = [threading.Thread(target=p.start) for p in processes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in processes:
        p.join()
    assert [p.exitcode for p in processes] == [0] * 12
    for p in processes:
        check_mechanism(p.method, p.messages[0], marked)


def test_a_child_started_from_a_thread_outlives_the_thread(method: str) -> None:
    """Linux's parent-death signal follows the forking *thread*; the child must not die with it."""
    from multiprocessing.connection import wait

    started = []
    thread = threading.Thread(target=lambda: started.append(
        processing.Process(target=proc_targets.sleep_forever, method=method)))
    thread.start()
    thread.join()
    [p] = started
    worker = threading.Thread(target=p.start)
    worker.start()
    worker.join()
    try:
        assert wait([p.sentinel], timeout=0.5) == []  # a wrongly armed guard fires at once
        assert p.isAlive()
    finally:
        p.terminate()
        p.join()
    assert p.exitcode == -15


def test_a_child_started_from_a_thread_can_send_messages(method: str) -> None:
    box = []
    p = processing.Process(target=proc_targets.send, args=("one", "two"), method=method)
    worker = threading.Thread(target=lambda: box.append(p.start()))
    worker.start()
    worker.join()
    p.join()
    assert p.exitcode == 0
    assert p.messages == ["one", "two"]
