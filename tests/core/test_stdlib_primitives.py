"""The standard library's multiprocessing primitives with our Process objects (issue 14).

A Queue, Lock, Event ... made by ``multiprocessing.get_context(m)`` works as
an argument of ``processing.Process(method=m)`` as it does with that
context's own Process: the stdlib's spawning protocol is spoken (pickling
under ``set_spawning_popen``, descriptors through ``duplicate_for_child``),
and a child that returns runs multiprocessing's finalizers, so nothing it put
is lost. ``processing.Queue``, ``Lock`` ... work with every method.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import weakref

import proc_targets
import pytest
import stdlib_targets
from support import fork_server_pid, os_children, pid_gone, wait_until

import processing

pytestmark = pytest.mark.timeout(90)


def _primitives(factory: object) -> dict[str, object]:
    """One of each primitive, made by ``factory`` (a stdlib context, or the processing module)."""
    lock = factory.Lock()
    return {
        "queue": factory.Queue(),
        "simple_queue": factory.SimpleQueue(),
        "joinable_queue": factory.JoinableQueue(),
        "lock": lock,
        "rlock": factory.RLock(),
        "semaphore": factory.Semaphore(0),
        "bounded_semaphore": factory.BoundedSemaphore(1),
        "value": factory.Value("i", 0),
        "array": factory.Array("i", 5),
        "barrier": factory.Barrier(2),
        "condition": factory.Condition(),
        "flag": factory.Value("i", 0, lock=False),
        "event": factory.Event(),
    }


def _check_everything(prims: dict[str, object], method: str) -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    prims["pipe"] = writer
    for i in range(3):
        prims["joinable_queue"].put(i)
    prims["lock"].acquire()
    p = processing.Process(target=stdlib_targets.use_everything, args=(prims,), method=method)
    p.start()
    writer.close()
    try:
        assert prims["barrier"].wait(timeout=30) in (0, 1)
        assert prims["semaphore"].acquire(timeout=30)
        with prims["condition"]:
            assert prims["condition"].wait_for(lambda: prims["flag"].value == 1, timeout=30)
        assert prims["event"].wait(30)
        assert reader.recv() == ("piped", False)  # and the lock the parent held was seen as held
        prims["joinable_queue"].join()  # the child's task_done() calls reached the parent
        assert [prims["queue"].get(timeout=30) for _ in range(stdlib_targets.ITEMS)] == list(
            range(stdlib_targets.ITEMS))
        assert prims["simple_queue"].get() == "simple"
    finally:
        prims["lock"].release()
        p.join(30)
    assert p.exitcode == 0
    assert prims["value"].value == 42
    assert list(prims["array"]) == [0, 1, 4, 9, 16]
    reader.close()


def test_the_stdlib_primitives_of_the_same_method_work_in_a_child(method: str) -> None:
    """Fails before: under fork the Queue lost items; under spawn and forkserver every primitive was
    refused ("... should only be shared between processes through inheritance")."""
    _check_everything(_primitives(multiprocessing.get_context(method)), method)


def test_processing_primitives_work_with_every_method(method: str) -> None:
    _check_everything(_primitives(processing), method)


@pytest.mark.parametrize("stdlib_method", ["fork", "spawn", "forkserver"])
def test_nothing_a_child_put_is_lost(method: str, stdlib_method: str) -> None:
    """The child returns right after put(): only multiprocessing's finalizers flush its feeder thread."""
    if stdlib_method == "fork" and method != "fork":
        pytest.skip("a 'fork' context Queue cannot reach a fresh child (tested below)")
    queue = multiprocessing.get_context(stdlib_method).Queue()
    p = processing.Process(target=stdlib_targets.put_items, args=(queue, 1000), method=method)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert [queue.get(timeout=30) for _ in range(1000)] == list(range(1000))


@pytest.mark.slow
def test_manager_proxies_work_in_a_child(method: str) -> None:
    """Fails before: AuthenticationError under spawn and forkserver (the child's multiprocessing key)."""
    for manager in (multiprocessing.get_context(method).Manager(), processing.Manager()):
        with manager:
            proxies = {"list": manager.list(), "dict": manager.dict(), "namespace": manager.Namespace(),
                       "queue": manager.Queue(), "lock": manager.Lock(), "event": manager.Event()}
            p = processing.Process(target=stdlib_targets.use_manager, args=(proxies,), method=method)
            p.start()
            p.join(60)
            assert p.exitcode == 0
            assert list(proxies["list"]) == [p.pid]
            assert proxies["dict"]["child"] == "was here"
            assert proxies["namespace"].value == 7
            assert proxies["queue"].get(timeout=10) == "via the manager"
            assert proxies["event"].is_set()
            del proxies
            gc.collect()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_fork_context_primitive_is_refused_at_start_naming_the_fix(method: str) -> None:
    before = {child.pid for child in os_children()}
    server = fork_server_pid()
    lock = multiprocessing.get_context("fork").Lock()
    p = processing.Process(target=proc_targets.echo, args=(lock,), method=method)
    with pytest.raises(processing.ProcessError) as caught:
        p.start()
    message = str(caught.value)
    assert "'fork' context" in message
    assert "multiprocessing.get_context('forkserver').Lock()" in message
    assert "processing.Lock()" in message
    assert p.pid is None and repr(p) == f"<Process({p.name}, initial)>"
    assert processing.activeChildren() == []
    assert {child.pid for child in os_children()} == before
    if server is not None:
        assert fork_server_pid() == server


def test_a_fork_context_primitive_still_works_under_fork() -> None:
    queue = multiprocessing.get_context("fork").Queue()
    p = processing.Process(target=stdlib_targets.put_items, args=(queue, 10), method="fork")
    p.start()
    p.join(30)
    assert [queue.get(timeout=10) for _ in range(10)] == list(range(10))


def test_stdlib_daemon_grandchildren_are_stopped_when_a_child_returns(method: str) -> None:
    """Fails before: the child ended with os._exit and its stdlib daemon child ran on, orphaned."""
    p = processing.Process(target=stdlib_targets.start_stdlib_daemon, args=("fork",), method=method)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    [grandchild] = p.messages
    assert wait_until(lambda: pid_gone(grandchild), 10), "the stdlib daemon grandchild outlived the child"


def test_atexit_handlers_run_where_the_stdlib_runs_them(method: str, tmp_path) -> None:
    """A spawned child ends through sys.exit (atexit runs), as the stdlib's; forked ones with os._exit."""
    marker = tmp_path / "atexit"
    p = processing.Process(target=stdlib_targets.register_atexit, args=(str(marker),), method=method)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert marker.exists() == (method == "spawn")


@pytest.mark.slow
def test_pools_work_inside_a_child(method: str) -> None:
    p = processing.Process(target=stdlib_targets.use_pools, args=(method,), method=method)
    p.start()
    p.join(90)
    assert p.exitcode == 0
    squares = [i * i for i in range(10)]
    assert p.messages == [(squares, squares, squares[:5])]


def test_the_child_has_multiprocessing_state_of_its_method(method: str) -> None:
    """The child's start method (ours and multiprocessing's), its multiprocessing key, name and parent.

    Fails before: getStartMethod() in a child was the global default, multiprocessing's key was a
    fresh one under spawn and forkserver, and parent_process() was None.
    """
    other = "fork" if method != "fork" else "spawn"
    processing.setStartMethod(other)
    p = processing.Process(target=stdlib_targets.report_stdlib_state, method=method, name="reporter")
    p.start()
    p.join(30)
    [state] = p.messages
    assert state["processing_method"] == method
    assert state["mp_method"] == method
    assert state["mp_authkey"] == bytes(multiprocessing.current_process().authkey)
    assert state["mp_name"] == "reporter"
    assert state["mp_children"] == []
    assert state["parent_pid"] == os.getpid()
    assert state["parent_alive"] is True


def test_grandchildren_of_a_child_use_its_method_by_default(method: str) -> None:
    processing.setStartMethod("fork" if method != "fork" else "spawn")
    p = processing.Process(target=proc_targets.start_grandchildren, method=method)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert p.messages[0]["child_exitcode"] == 0


def test_stdlib_after_fork_hooks_run_in_a_fork_child() -> None:
    """Fails before: util.register_after_fork hooks did not run, so a ForkAwareLocal kept the
    parent's state (the connection a Manager proxy shares) in the child."""
    from multiprocessing import util

    obj = stdlib_targets.Resettable()
    util.register_after_fork(obj, stdlib_targets.Resettable.reset)
    local = util.ForkAwareLocal()
    local.connection = "the parent's"
    p = processing.Process(target=stdlib_targets.report_resettable, args=(obj, local), method="fork")
    p.start()
    p.join(30)
    assert p.messages == [("reset in the child", [])]


def test_a_pipe_end_travels_as_a_descriptor_not_a_number(method: str) -> None:
    """Fails before: under spawn and forkserver the end arrived as a bare number (EBADF, or writes on
    whatever the child had on that number)."""
    reader, writer = processing.Pipe(duplex=False)
    p = processing.Process(target=stdlib_targets.put_items, args=(_Sender(writer), 3), method=method)
    p.start()
    writer.close()
    assert [reader.recv() for _ in range(3)] == [0, 1, 2]
    p.join(30)
    assert p.exitcode == 0
    reader.close()


class _Sender:
    """Has put(), like a Queue, over a Connection."""

    def __init__(self, conn: object) -> None:
        self.conn = conn

    def put(self, obj: object) -> None:
        self.conn.send(obj)


def test_the_process_drops_target_and_arguments_after_start(method: str) -> None:
    """As CPython's does since bpo-30775: a large argument is freed once the caller drops it."""

    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)
    p = processing.Process(target=stdlib_targets.ignore, args=(big,), kwargs={"also": big}, method=method)
    p.start()
    del big
    gc.collect()
    assert ref() is None
    p.join(30)
    assert p.exitcode == 0
