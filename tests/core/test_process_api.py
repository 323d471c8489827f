"""The Process object's API: names, repr, flags, module functions, misuse and the state machine."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import threading
from multiprocessing.connection import wait

import proc_targets
import pytest
from support import METHODS, open_fds, os_children, run_python

import processing
from processing import ProcessStateError

pytestmark = pytest.mark.timeout(60)


def name_number(process: processing.Process) -> int:
    match = re.fullmatch(r"Process-(\d+)", process.name)
    assert match, process.name
    return int(match.group(1))


# -- names -------------------------------------------------------------------


def test_default_names_count_up_at_construction() -> None:
    first = processing.Process()
    second = processing.Process(target=proc_targets.noop)
    named = processing.Process(name="custom")
    third = processing.Process()
    assert name_number(second) == name_number(first) + 1
    assert named.name == "custom"
    assert name_number(third) == name_number(first) + 3  # the named one used a number too


def test_default_name_of_a_subclass_is_process_n() -> None:
    class Worker(processing.Process):
        pass

    before = processing.Process()
    worker = Worker()
    recorder = proc_targets.Recorder(value=1)
    assert worker.name == f"Process-{name_number(before) + 1}"
    assert recorder.name == f"Process-{name_number(before) + 2}"


def test_get_set_name_and_property() -> None:
    p = processing.Process(name="first")
    assert p.getName() == p.name == "first"
    p.setName("second")
    assert p.getName() == p.name == "second"
    p.name = "third"
    assert p.getName() == "third"
    q = processing.Process(name="third")  # names need not be unique
    assert q.name == p.name


@pytest.mark.parametrize("bad", [1, None, b"bytes", ["list"]])
def test_set_name_rejects_non_str(bad: object) -> None:
    p = processing.Process()
    with pytest.raises(TypeError):
        p.setName(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.name = bad  # type: ignore[assignment]
    if bad is not None:
        with pytest.raises(TypeError):
            processing.Process(name=bad)  # type: ignore[arg-type]
    assert p.name.startswith("Process-")


def test_names_by_generation_in_children(method: str) -> None:
    p = processing.Process(target=proc_targets.start_grandchildren, args=(method,), method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    [report] = p.messages
    assert report["me"] == p.name
    assert report["child"] == f"{p.name}:1"
    [inner] = report["child_messages"]
    assert inner["me"] == f"{p.name}:1"
    assert inner["names"] == [f"{p.name}:1:1", f"{p.name}:1:2"]
    assert [r["name"] for r in inner["reports"]] == inner["names"]
    assert inner["exitcodes"] == [0, 0]


@pytest.mark.parametrize("method", METHODS)
def test_exact_names_and_reprs_in_a_fresh_interpreter(method: str) -> None:
    """The numbering starts at Process-1 in a fresh interpreter; children are Process-1:1, Process-1:2."""
    result = run_python(
        """
        import json, sys
        import processing, proc_targets
        method = sys.argv[1]
        first = processing.Process(target=proc_targets.start_children, args=(2, method), method=method)
        second = processing.Process(daemon=True)
        out = {"first": first.name, "second_repr": repr(second), "main": repr(processing.currentProcess())}
        first.start()
        first.join()
        out["first_repr"] = repr(first)
        out["report"] = first.messages[0]
        third = processing.Process()
        out["third"] = third.name
        print(json.dumps(out))
        """,
        method,
        env={"PYTHONPATH": os.path.dirname(proc_targets.__file__)},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["first"] == "Process-1"
    assert out["second_repr"] == "<Process(Process-2, initial daemon)>"
    assert out["main"] == "<_MainProcess(MainProcess, started)>"
    assert out["first_repr"] == "<Process(Process-1, stopped)>"
    assert out["report"]["me"] == "Process-1"
    assert out["report"]["names"] == ["Process-1:1", "Process-1:2"]
    assert [r["name"] for r in out["report"]["reports"]] == ["Process-1:1", "Process-1:2"]
    assert out["third"] == "Process-3"


# -- repr ----------------------------------------------------------------------


def test_repr_of_the_main_process() -> None:
    main = processing.currentProcess()
    assert repr(main) == "<_MainProcess(MainProcess, started)>"
    assert main.name == main.getName() == "MainProcess"
    assert main.getPid() == main.pid == os.getpid()
    assert main.isAlive() and main.is_alive()
    assert not main.isDaemon()


def test_repr_initial_and_daemon() -> None:
    p = processing.Process()
    assert repr(p) == f"<Process({p.name}, initial)>"
    d = processing.Process(daemon=True)
    assert repr(d) == f"<Process({d.name}, initial daemon)>"
    assert str(d) == repr(d)


def test_repr_of_a_subclass_shows_its_class_name() -> None:
    class Worker(processing.Process):
        pass

    w = Worker(daemon=True)
    assert repr(w) == f"<Worker({w.name}, initial daemon)>"


def test_repr_through_the_life_cycle(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method, daemon=True)
    assert repr(p) == f"<Process({p.name}, initial daemon)>"
    p.start()
    assert repr(p) == f"<Process({p.name}, started daemon)>"
    p.terminate()
    assert repr(p) == f"<Process({p.name}, stopped[SIGTERM] daemon)>"
    p.join()

    q = processing.Process(target=proc_targets.noop, method=method)
    q.start()
    q.join()
    assert repr(q) == f"<Process({q.name}, stopped)>"


@pytest.mark.parametrize(
    ("code", "status"), [(1, "stopped[1]"), (3, "stopped[3]"), (0, "stopped")]
)
def test_repr_of_exit_codes(method: str, code: int, status: str) -> None:
    p = processing.Process(target=proc_targets.call_sys_exit, args=(code,), method=method)
    p.start()
    p.join()
    assert p.exitcode == code
    assert repr(p) == f"<Process({p.name}, {status})>"


def test_status_word() -> None:
    assert processing.status_word(None) == "started"
    assert processing.status_word(0) == "stopped"
    assert processing.status_word(2) == "stopped[2]"
    assert processing.status_word(-signal.SIGTERM) == "stopped[SIGTERM]"
    assert processing.status_word(-signal.SIGKILL) == "stopped[SIGKILL]"


# -- pid, flags and state ----------------------------------------------------------


def test_pid_exitcode_and_alive_through_the_life_cycle(method: str, tmp_path: os.PathLike[str]) -> None:
    cue = os.path.join(tmp_path, "cue")
    p = processing.Process(target=proc_targets.wait_for_file, args=(cue,), method=method)
    assert p.getPid() is None and p.pid is None and p.ident is None
    assert p.getExitCode() is None and p.exitcode is None
    assert not p.isAlive() and not p.is_alive()
    p.start()
    assert isinstance(p.pid, int) and p.pid > 0 and p.pid != os.getpid()
    assert p.getPid() == p.pid == p.ident
    assert p.isAlive() and p.is_alive()
    assert p.exitcode is None
    p.join(0.01)  # times out: the child waits for the cue
    assert p.isAlive()
    assert p.exitcode is None
    assert p in processing.activeChildren()
    open(cue, "w").close()
    p.join()
    assert not p.isAlive()
    assert p.exitcode == 0
    assert p not in processing.activeChildren()
    p.join()  # a process can be joined many times
    p.join(0)
    assert p.exitcode == 0


def test_the_child_sees_itself_as_current_process(method: str) -> None:
    p = processing.Process(target=proc_targets.report_identity, method=method, name="me-myself")
    p.start()
    p.join()
    assert p.exitcode == 0
    [report] = p.messages
    assert report["name"] == report["getName"] == "me-myself"
    assert report["pid"] == report["getpid"] == p.pid
    assert report["is_alive"] is True
    assert report["class"] == "Process"
    assert report["current_is_current_process"] is True


def test_subclass_run_is_called_in_the_child(method: str) -> None:
    p = proc_targets.Recorder(value={"x": [1, 2]}, method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [("Recorder.run", {"x": [1, 2]}, "Recorder")]


def test_args_and_kwargs_reach_the_target(method: str) -> None:
    payload = proc_targets.Payload([1, "two", 3.0])
    p = processing.Process(
        target=proc_targets.echo, args=(1, "a", payload), kwargs={"key": payload, "n": None}, method=method
    )
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [((1, "a", payload), {"key": payload, "n": None})]


def test_run_without_target_does_nothing(method: str) -> None:
    p = processing.Process(method=method)
    p.run()  # in this process: no target, nothing happens
    p.start()
    p.join()
    assert p.exitcode == 0


# -- daemon flag ---------------------------------------------------------------------


def test_daemon_flag_defaults_and_setters() -> None:
    p = processing.Process()
    assert p.isDaemon() is False and p.daemon is False  # inherited from the main process
    p.setDaemon(True)
    assert p.isDaemon() is True
    p.daemon = False
    assert p.daemon is False
    assert processing.Process(daemon=True).isDaemon() is True
    assert processing.Process(daemon=False).isDaemon() is False


def test_daemon_flag_cannot_change_after_start(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    try:
        with pytest.raises(ProcessStateError):
            p.setDaemon(True)
        with pytest.raises(ProcessStateError):
            p.daemon = True
        assert p.isDaemon() is False
    finally:
        p.kill()
        p.join()
    with pytest.raises(ProcessStateError):
        p.setDaemon(True)


@pytest.mark.parametrize("daemon", [True, False])
def test_daemon_flag_is_inherited_by_grandchildren(method: str, daemon: bool) -> None:
    p = processing.Process(target=proc_targets.report_grandchild_daemon, args=(method,), method=method,
                           daemon=daemon)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert p.messages == [(daemon, daemon, daemon)]


def test_daemon_flag_seen_by_the_child(method: str) -> None:
    p = processing.Process(target=proc_targets.report_identity, method=method, daemon=True)
    p.start()
    p.join()
    assert p.messages[0]["daemon"] is True


# -- module functions -----------------------------------------------------------


def test_module_function_aliases() -> None:
    assert processing.currentProcess() is processing.current_process()
    assert processing.active_children is processing.activeChildren
    assert processing.cpuCount() == processing.cpu_count() == os.cpu_count()
    assert processing.getStartMethod() == processing.get_start_method()
    assert processing.sendToParent is processing.send_to_parent


def test_active_children_lists_only_live_children(method: str, tmp_path: os.PathLike[str]) -> None:
    sleeper = processing.Process(target=proc_targets.sleep_forever, method=method)
    quick = processing.Process(target=proc_targets.noop, method=method)
    assert processing.activeChildren() == []
    sleeper.start()
    quick.start()
    assert wait([quick.sentinel], timeout=30) == [quick.sentinel]
    # The quick one has exited although nobody joined it: it is not listed.
    assert processing.activeChildren() == [sleeper]
    sleeper.terminate()
    assert processing.activeChildren() == []
    sleeper.join()
    quick.join()


def test_send_to_parent_outside_a_child_raises() -> None:
    with pytest.raises(ProcessStateError):
        processing.sendToParent("nobody listens")


def test_start_method_default_and_choice(method: str) -> None:
    assert processing.getStartMethod() in METHODS
    processing.setStartMethod(method)
    assert processing.getStartMethod() == processing.get_start_method() == method
    processing.set_start_method("spawn")
    assert processing.getStartMethod() == "spawn"


@pytest.mark.parametrize("bad", ["threads", "", None, "FORK", 1])
def test_unknown_start_method_is_rejected(bad: object) -> None:
    before = processing.getStartMethod()
    with pytest.raises(ValueError):
        processing.setStartMethod(bad)  # type: ignore[arg-type]
    assert processing.getStartMethod() == before
    if bad is not None:  # method=None means "the default"
        with pytest.raises(ValueError):
            processing.Process(method=bad)  # type: ignore[arg-type]


# -- misuse ----------------------------------------------------------------------


def test_group_must_be_none() -> None:
    with pytest.raises(ValueError):
        processing.Process(group="a group")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        processing.Process("a group")  # type: ignore[arg-type]


def test_start_twice(method: str) -> None:
    p = processing.Process(target=proc_targets.noop, method=method)
    p.start()
    pid = p.pid
    with pytest.raises(ProcessStateError, match=re.escape(p.name)):
        p.start()
    p.join()
    with pytest.raises(ProcessStateError):
        p.start()
    assert p.pid == pid
    assert p.exitcode == 0


def test_join_or_signal_before_start() -> None:
    p = processing.Process(target=proc_targets.noop)
    with pytest.raises(ProcessStateError, match=re.escape(p.name)):
        p.join()
    with pytest.raises(ProcessStateError):
        p.join(1)
    with pytest.raises(ProcessStateError):
        p.terminate()
    with pytest.raises(ProcessStateError):
        p.kill()
    with pytest.raises(ValueError):
        _ = p.sentinel
    assert processing.activeChildren() == []


def test_errors_are_runtime_and_process_errors() -> None:
    assert issubclass(ProcessStateError, RuntimeError)
    assert issubclass(ProcessStateError, processing.ProcessError)
    import multiprocessing

    assert processing.ProcessError is multiprocessing.ProcessError
    assert processing.AuthenticationError is multiprocessing.AuthenticationError


def test_main_process_cannot_join_itself() -> None:
    with pytest.raises(ProcessStateError):
        processing.currentProcess().join()


def test_a_child_cannot_join_itself(method: str) -> None:
    p = processing.Process(target=proc_targets.try_join_self, method=method)
    p.start()
    p.join()
    assert p.exitcode == 0
    [reply] = p.messages
    assert reply is not None, "join() on itself returned instead of raising"
    error_type, text = reply
    assert error_type == "ProcessStateError"
    assert p.name in text


@pytest.mark.parametrize("started", [False, True], ids=["unstarted", "started"])
def test_creator_only_methods_from_another_process(method: str, started: bool) -> None:
    other = processing.Process(target=proc_targets.sleep_forever, method="fork")
    if started:
        other.start()
    try:
        p = processing.Process(target=proc_targets.misuse_foreign_process, args=(other,), method=method)
        p.start()
        p.join()
        assert p.exitcode == 0
        [results] = p.messages
        for action in ("start", "join", "isAlive"):
            assert results[action] is not None, f"{action}() from a non-creator did not raise"
            assert results[action][0] == "ProcessStateError", (action, results[action])
    finally:
        if started:
            other.kill()
            other.join()
    assert os_children() == []  # the child did not start a grandchild through `other`


# -- pickling failures ------------------------------------------------------------


class HoldsALock:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def method(self) -> None:
        pass


class LockedProcess(processing.Process):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.lock = threading.Lock()

    def run(self) -> None:
        pass


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize(
    ("make", "label"),
    [
        (lambda m: processing.Process(target=proc_targets.echo, args=(1, threading.Lock()), method=m),
         "args[1]"),
        (lambda m: processing.Process(target=proc_targets.echo, args=(threading.Lock(),), method=m),
         "args[0]"),
        (lambda m: processing.Process(target=proc_targets.echo, kwargs={"lock": threading.Lock()}, method=m),
         "kwargs['lock']"),
        (lambda m: processing.Process(target=HoldsALock().method, method=m), "target"),
        (lambda m: LockedProcess(method=m), "attribute 'lock'"),
    ],
    ids=["args1", "args0", "kwargs", "target", "attribute"],
)
def test_unpicklable_target_names_the_culprit_and_starts_nothing(method: str, make, label: str) -> None:
    # Make sure a fork server is running already, so that only a new child would show.
    warm = processing.Process(target=proc_targets.noop, method=method)
    warm.start()
    warm.join()
    fds_before = open_fds()
    children_before = {c.pid for c in os_children()}
    p = make(method)
    with pytest.raises(processing.TargetPicklingError) as caught:
        p.start()
    message = str(caught.value)
    assert label in message
    assert repr(method) in message or method in message
    assert p.name in message
    assert isinstance(caught.value, processing.ProcessError)
    import pickle

    assert isinstance(caught.value, pickle.PicklingError)
    assert {c.pid for c in os_children()} == children_before
    assert p.pid is None
    assert not p.isAlive()
    assert p not in processing.activeChildren()
    assert open_fds() - fds_before == set(), "the failed start leaked file descriptors"


def test_unpicklable_args_are_fine_under_fork() -> None:
    """fork sends nothing, so what spawn and forkserver refuse works there."""
    lock = threading.Lock()
    children = [
        processing.Process(target=proc_targets.echo, kwargs={"n": 1}, args=(), method="fork"),
        processing.Process(target=HoldsALock().method, method="fork"),
        processing.Process(target=lambda lock: lock.acquire(), args=(lock,), method="fork"),
        LockedProcess(method="fork"),
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
    assert [child.exitcode for child in children] == [0, 0, 0, 0]


# -- terminate, kill, close, sentinel ----------------------------------------------------------


def test_terminate_right_after_start(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    p.terminate()
    assert not p.isAlive()
    assert p.exitcode == -signal.SIGTERM
    assert repr(p) == f"<Process({p.name}, stopped[SIGTERM])>"
    p.terminate()  # a no-op once it has exited
    p.join()
    assert p.exitcode == -signal.SIGTERM


def test_kill(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    p.kill()
    assert not p.isAlive()
    assert p.getExitCode() == -signal.SIGKILL
    assert repr(p) == f"<Process({p.name}, stopped[SIGKILL])>"
    p.join()


def test_terminate_a_child_that_ignores_sigterm(method: str, events, monkeypatch) -> None:
    monkeypatch.setattr(processing.process, "SIGNAL_WAIT", 0.2)
    p = processing.Process(target=proc_targets.ignore_sigterm_then_sleep, method=method)
    p.start()
    try:
        assert events.wait_for(p, "message", "ready")
        p.terminate()
        assert p.isAlive()  # it ignores SIGTERM: terminate() returned, the child still runs
        assert p.exitcode is None
    finally:
        p.kill()
    assert not p.isAlive()
    assert p.exitcode == -signal.SIGKILL
    p.join()


def test_close(method: str) -> None:
    p = processing.Process(target=proc_targets.sleep_forever, method=method)
    p.start()
    with pytest.raises(ValueError):
        p.close()
    assert p.isAlive()  # a refused close() changed nothing
    p.kill()
    p.join()
    fds_before = open_fds()
    p.close()
    assert len(open_fds()) < len(fds_before), "close() released no descriptor"
    p.close()  # closing twice is harmless
    for call in (p.start, p.join, p.isAlive, p.is_alive, p.terminate, p.kill, p.getExitCode):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        _ = p.sentinel
    with pytest.raises(ValueError):
        _ = p.exitcode
    assert p.name in repr(p)  # repr still works


def test_close_before_start() -> None:
    p = processing.Process(target=proc_targets.noop)
    p.close()
    with pytest.raises(ValueError):
        p.start()
    assert processing.activeChildren() == []


def test_sentinel_becomes_readable_when_the_child_exits(method: str, tmp_path: os.PathLike[str]) -> None:
    cue = os.path.join(tmp_path, "cue")
    p = processing.Process(target=proc_targets.wait_for_file, args=(cue,), method=method)
    p.start()
    sentinel = p.sentinel
    assert isinstance(sentinel, int)
    assert sentinel == p.sentinel  # stable
    poller = select.poll()
    poller.register(sentinel, select.POLLIN)
    assert poller.poll(0) == []  # the child is waiting for the cue
    open(cue, "w").close()
    assert wait([sentinel], timeout=30) == [sentinel]
    p.join()
    assert p.exitcode == 0
    assert wait([sentinel], timeout=0) == [sentinel]  # stays readable


@pytest.mark.parametrize("new_group", [False, True])
def test_new_process_group(method: str, new_group: bool) -> None:
    p = processing.Process(target=proc_targets.report_identity, method=method, new_process_group=new_group)
    p.start()
    p.join()
    assert p.exitcode == 0
    pgid = p.messages[0]["pgid"]
    if new_group:
        assert pgid == p.pid
    else:
        assert pgid == os.getpgid(0)


def test_output_must_be_callable_or_a_stream() -> None:
    with pytest.raises(TypeError):
        processing.Process(target=proc_targets.noop, output=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        processing.Process(target=proc_targets.noop, output="stdout.txt")  # type: ignore[arg-type]
