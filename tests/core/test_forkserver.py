"""The fork server's own promises: preloading, and what its speed-ups must not change in a child.

The server forks from its only thread and so holds back threading's and
logging's after-fork hooks (processing/forkserver/server.py says why). These tests
check that a child does not notice: it gets its own random state, can run
threads and log, and sees only its own thread, even when a preloaded module
started a thread in the server (then the hooks are registered after all).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest
from support import HERE, run_python

import processing
from processing.forkserver import protocol, server
from processing.forkserver.client import fork_server

pytestmark = pytest.mark.timeout(60)


def _report() -> None:
    import logging

    done = []
    worker = threading.Thread(target=done.append, args=(1,))
    worker.start()
    worker.join()
    logging.getLogger("processing.test").warning("logged from the child")
    processing.sendToParent(
        {
            "random": random.getrandbits(64),
            "threads": threading.active_count(),
            "main_is_current": threading.main_thread() is threading.current_thread(),
            "thread_ran": done == [1],
            "native_id": threading.main_thread().native_id == os.getpid(),
        }
    )


def _reports(count: int) -> list[dict[str, object]]:
    children = [processing.Process(target=_report, method="forkserver") for _ in range(count)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [0] * count
    return [child.messages[0] for child in children]


def test_children_get_their_own_random_state() -> None:
    """random's after-fork reseed is kept: no two children draw the same numbers."""
    reports = _reports(6)
    draws = [report["random"] for report in reports]
    assert len(set(draws)) == len(draws), draws


def test_threads_and_logging_work_in_children_and_exit_is_clean() -> None:
    for report in _reports(3):
        assert report["threads"] == 1
        assert report["main_is_current"] is True
        assert report["thread_ran"] is True
        assert report["native_id"] is True  # the child's own, not the server's


def test_only_the_lock_resets_are_held_back_and_only_in_a_single_threaded_server() -> None:
    """Real hooks: threading's are dropped when the server has one thread; random's and mixed ones kept."""

    kept: list[dict[str, object]] = []
    threading_hook = {"after_in_child": threading._after_fork}  # type: ignore[attr-defined]
    random_hook = {"after_in_child": random._inst.seed}  # type: ignore[attr-defined]
    mixed = {"before": threading._after_fork, "after_in_child": random._inst.seed}  # type: ignore[attr-defined]
    held = server._HeldHooks(lambda **hooks: kept.append(hooks), [threading_hook, random_hook, mixed])
    held.settle(single_threaded=True)
    assert kept == [random_hook, mixed]
    held.settle(single_threaded=True)
    assert kept == [random_hook, mixed]  # nothing twice
    held.settle(single_threaded=False)  # a module imported later started a thread
    assert kept == [random_hook, mixed, threading_hook]


def test_preloaded_modules_are_imported_once_by_the_server(tmp_path) -> None:
    (tmp_path / "preloaded_marker.py").write_text("import os\nIMPORTED_IN = os.getpid()\n")
    result = run_python(
        """
        import json, os, processing
        def where():
            import preloaded_marker
            processing.sendToParent([preloaded_marker.IMPORTED_IN, os.getpid(), os.getppid()])
        processing.setForkserverPreload(["preloaded_marker"])
        children = [processing.Process(target=where) for _ in range(2)]
        for c in children: c.start()
        for c in children: c.join()
        print(json.dumps([c.messages[0] for c in children]))
        """,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    (first, child1, server1), (second, child2, server2) = json.loads(result.stdout)
    assert first == second == server1 == server2  # imported in the server, not in each child
    assert child1 != first and child2 != first


def test_a_preload_that_starts_a_thread_gets_the_hooks_back(tmp_path) -> None:
    """Then threading's hook must run: without it a child would list the server's thread as its own."""
    (tmp_path / "starts_a_thread.py").write_text(
        "import threading\n"
        "threading.Thread(target=threading.Event().wait, name='preloaded', daemon=True).start()\n"
    )
    result = run_python(
        """
        import processing, threading
        def count():
            processing.sendToParent(sorted(t.name for t in threading.enumerate()))
        processing.setForkserverPreload(["starts_a_thread"])
        p = processing.Process(target=count)
        p.start(); p.join()
        print(p.exitcode, p.messages[0])
        """,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "['MainThread']"]


def test_preload_set_while_the_server_runs_takes_effect_at_once(tmp_path) -> None:
    """The running server imports the module before the next start, and no spare forked before serves it.

    Names that fail to import (missing, or raising) are skipped and the server lives on.
    """
    (tmp_path / "late_marker.py").write_text("import os\nIMPORTED_IN = os.getpid()\n")
    (tmp_path / "broken_at_import.py").write_text("raise RuntimeError('broken on purpose')\n")
    (tmp_path / "exits_at_import.py").write_text("raise SystemExit(3)\n")
    result = run_python(
        """
        import json, os, sys, processing, psutil
        from support import wait_until
        def where():
            imported = "late_marker" in sys.modules
            import late_marker
            processing.sendToParent([imported, late_marker.IMPORTED_IN, os.getppid()])
        def run():
            p = processing.Process(target=where); p.start(); p.join(); return p.messages[0]
        def spares(server):
            try:
                return [c for c in server.children() if c.status() != psutil.STATUS_ZOMBIE]
            except psutil.NoSuchProcess:  # a child exited while we looked: look again
                return []
        before = run()
        server = psutil.Process(before[2])
        # The server forks its spares once it is quiet: spares forked before the preload changes,
        # which must not serve the starts after it.
        assert wait_until(lambda: len(spares(server)) >= 2), "the fork server forked no spares"
        processing.setForkserverPreload(
            ["no_such_module_anywhere", "broken_at_import", "exits_at_import", "late_marker"]
        )
        after = [run(), run()]
        processing.setForkserverPreload(["late_marker"])  # again: nothing changes
        print(json.dumps([before, *after, run()]))
        """,
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), HERE])},
    )
    assert result.returncode == 0, result.stderr
    before, *after = json.loads(result.stdout)
    assert before[0] is False and before[1] != before[2]  # imported by the child itself
    for imported, imported_in, server_pid in after:
        assert imported is True and imported_in == server_pid  # imported once, by the server


def test_preload_also_keeps_what_is_there() -> None:
    saved = fork_server().preload
    try:
        processing.setForkserverPreload(["json"])
        fork_server().preload_also(["json", "decimal"])
        assert fork_server().preload == ["json", "decimal"]
        assert _reports(1)[0]["threads"] == 1  # the running server took the request and still serves
    finally:
        processing.setForkserverPreload(saved)


def test_preload_takes_a_list_of_names() -> None:
    with pytest.raises(TypeError, match=r"list of module names"):
        processing.setForkserverPreload("numpy")  # type: ignore[arg-type]


def test_back_to_back_and_concurrent_starts_all_run() -> None:
    """Spares forked at hand-over and forks on demand mix; every child runs once with its own pid."""
    pids = []
    for _ in range(20):
        p = processing.Process(target=os.getpid, method="forkserver")
        p.start()
        p.join(30)
        assert p.exitcode == 0
        pids.append(p.pid)
    many = [processing.Process(target=os.getpid, method="forkserver") for _ in range(40)]
    for p in many:
        p.start()
    for p in many:
        p.join(30)
    assert [p.exitcode for p in many] == [0] * 40
    pids += [p.pid for p in many]
    assert len(set(pids)) == len(pids)


def test_a_start_skips_spares_that_died_and_the_pid_comes_before_the_child_runs() -> None:
    """Kill the server's idle children: the next starts still run, each with the pid it reports."""
    import psutil
    from support import fork_server_pid, pid_gone, wait_until

    first = processing.Process(target=os.getpid, method="forkserver")  # a server runs from here on
    first.start()
    first.join(30)
    server = psutil.Process(fork_server_pid())
    assert wait_until(lambda: len(server.children()) >= 2, limit=10)  # its spares, forked while quiet
    spares = server.children()
    for spare in spares:
        spare.kill()
    assert wait_until(lambda: all(pid_gone(spare.pid) for spare in spares), limit=10)  # dead, if not reaped
    p = processing.Process(target=lambda: processing.sendToParent(os.getpid()), method="forkserver")
    p.start()
    p.join(30)
    assert p.exitcode == 0 and p.messages == [p.pid]


def test_a_request_with_descriptors_missing_is_refused_and_the_server_lives_on() -> None:
    from support import fork_server_pid

    before = _reports(1)[0]
    server_pid = fork_server_pid()
    status_r, status_w = os.pipe()
    try:
        header = protocol.start_request(detached=False, new_group=False, client_group=0)
        fork_server().send_request(header, [status_w])
        os.close(status_w)
        assert os.read(status_r, 16) == b""  # closed unanswered: nothing started
    finally:
        os.close(status_r)
    assert _reports(1)[0]["threads"] == before["threads"] and fork_server_pid() == server_pid


def test_a_server_that_fails_takes_its_children_with_it() -> None:
    """Whatever ends the server, a client that sees it gone counts the children as ended: none may run on.

    Module names that are not UTF-8 make it fail here (no client of this package sends such a request).
    """
    import psutil
    from support import fork_server_pid, pid_gone, wait_until

    sleeper = processing.Process(target=time.sleep, args=(600,), method="forkserver")
    sleeper.start()
    server = psutil.Process(fork_server_pid())
    blob = b"\xff\xfe"
    header = protocol.REQUEST.pack(protocol.Kind.PRELOAD, False, False, len(blob), 0)
    fork_server().send_request(header + blob)
    sleeper.join(30)
    assert not sleeper.is_alive() and sleeper.exitcode is not None
    assert wait_until(lambda: pid_gone(sleeper.pid), limit=10), "the child outlived its server"
    assert wait_until(lambda: pid_gone(server.pid), limit=10)
    after = processing.Process(target=os.getpid, method="forkserver")  # and a new server takes over
    after.start()
    after.join(30)
    assert after.exitcode == 0 and fork_server_pid() != server.pid


def test_terminate_right_after_start_gives_minus_sigterm_while_the_server_is_busy() -> None:
    """The pid goes out before the request reaches the spare: a SIGTERM in that gap is the child's death
    by SIGTERM (its own status), not a lost child (255). Another thread keeps the server busy meanwhile."""
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            p = processing.Process(target=int, method="forkserver")
            p.start()
            p.join(30)

    busy = [threading.Thread(target=keep_busy) for _ in range(2)]
    for thread in busy:
        thread.start()
    try:
        codes = []
        for _ in range(300):
            p = processing.Process(target=time.sleep, args=(600,), method="forkserver")
            p.start()
            p.terminate()
            p.join(30)
            codes.append(p.exitcode)
    finally:
        stop.set()
        for thread in busy:
            thread.join()
    assert set(codes) == {-15}, {code: codes.count(code) for code in set(codes)}


def test_a_child_imports_nothing_once_the_stdlib_resource_tracker_runs(tmp_path) -> None:
    """A parent that has used the stdlib (a spawn Process, a SharedMemory) has its resource tracker
    running, and a fork server's child then adopts it: the tracker's modules must already be in the
    server, or every child imports them afresh (about 10 ms a start)."""
    (tmp_path / "import_audit.py").write_text(
        "import os, sys\n"
        "SERVER = os.getpid()\n"
        "AFTER_FORK = []\n"
        "def _hook(event, args):\n"
        "    if event == 'import' and os.getpid() != SERVER:\n"
        "        AFTER_FORK.append(args[0])\n"
        "sys.addaudithook(_hook)\n"
    )
    result = run_python(
        """
        import json, multiprocessing, processing
        from multiprocessing import resource_tracker
        def imported():
            import import_audit
            processing.sendToParent(sorted(set(import_audit.AFTER_FORK)))
        resource_tracker.ensure_running()  # as any stdlib spawn or shared-memory use does
        processing.setForkserverPreload(["import_audit"])
        p = processing.Process(target=imported, method="forkserver")
        p.start(); p.join()
        print(json.dumps(p.messages[0]))
        """,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
