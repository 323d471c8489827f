"""Targets that use the standard library's multiprocessing primitives (core/test_stdlib_primitives.py).

An importable module, like ``proc_targets``: spawned and fork-server children
import only this file, the standard library and ``processing``.
"""

from __future__ import annotations

import atexit
import os
import sys

import processing

ITEMS = 100


def use_everything(prims: dict[str, object]) -> None:
    """Exercise each primitive the parent made; the parent checks the effects (see the test)."""
    for i in range(ITEMS):
        prims["queue"].put(i)
    prims["simple_queue"].put("simple")
    joinable = prims["joinable_queue"]
    for _ in range(3):
        joinable.get(timeout=30)
        joinable.task_done()
    held = prims["lock"].acquire(False)  # the parent holds it: a shared lock cannot be taken
    with prims["rlock"]:
        pass
    prims["semaphore"].release()
    prims["bounded_semaphore"].acquire(timeout=30)
    prims["bounded_semaphore"].release()
    prims["value"].value = 42
    prims["array"][:] = [i * i for i in range(len(prims["array"]))]
    prims["barrier"].wait(timeout=30)
    with prims["condition"]:
        prims["flag"].value = 1
        prims["condition"].notify_all()
    prims["pipe"].send(("piped", held))
    prims["event"].set()


def put_items(queue: object, count: int = ITEMS) -> None:
    """Put ``count`` numbers and return at once: only multiprocessing's finalizers flush the last ones."""
    for i in range(count):
        queue.put(i)


def use_manager(proxies: dict[str, object]) -> None:
    proxies["list"].append(os.getpid())
    proxies["dict"]["child"] = "was here"
    proxies["namespace"].value = 7
    proxies["queue"].put("via the manager")
    proxies["lock"].acquire()
    proxies["lock"].release()
    proxies["event"].set()


def report_stdlib_state(tag: object = None) -> None:
    """What multiprocessing itself believes in this child."""
    import multiprocessing

    me = multiprocessing.current_process()
    parent = multiprocessing.parent_process()
    processing.sendToParent({
        "tag": tag,
        "mp_method": multiprocessing.get_start_method(),
        "processing_method": processing.getStartMethod(),
        "mp_authkey": bytes(me.authkey),
        "mp_name": me.name,
        "mp_children": multiprocessing.active_children(),
        "parent_pid": None if parent is None else parent.pid,
        "parent_alive": None if parent is None else parent.is_alive(),
        "pid": os.getpid(),
    })


#: Set in the parent by an after-fork hook test; a fork child must see the hook's effect.
class Resettable:
    def __init__(self) -> None:
        self.state = "parent's"

    def reset(self) -> None:
        self.state = "reset in the child"


def report_resettable(obj: Resettable, local: object) -> None:
    processing.sendToParent((obj.state, sorted(vars(local))))


def register_atexit(path: str) -> None:
    def write() -> None:
        with open(path, "w") as f:
            f.write("atexit ran")

    atexit.register(write)


def start_stdlib_daemon(method: str) -> None:
    """Start a stdlib daemonic grandchild that would sleep for ever, report its pid, and return."""
    import multiprocessing
    import time

    grandchild = multiprocessing.get_context(method).Process(target=time.sleep, args=(1000,), daemon=True)
    grandchild.start()
    processing.sendToParent(grandchild.pid)


def square(x: int) -> int:
    return x * x


def use_pools(method: str) -> None:
    """A stdlib Pool and a ProcessPoolExecutor inside a child of ours."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        pooled = pool.map(square, range(10))
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
        executed = list(executor.map(square, range(10)))
    with concurrent.futures.ProcessPoolExecutor(2) as executor:  # multiprocessing's default context here
        default = list(executor.map(square, range(5)))
    processing.sendToParent((pooled, executed, default))


def exit_with(code: int) -> None:
    sys.exit(code)


def ignore(*args: object, **kwargs: object) -> None:
    pass
