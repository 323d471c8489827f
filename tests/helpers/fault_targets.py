"""Targets for the fault-injection tests (core/test_faults_core.py, notebook/test_faults_kernel.py).

Like ``proc_targets``, an importable module so spawned and fork-server children
import only this file, the standard library and ``processing``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import processing

FLOOD_CHUNK = 1 << 16


def flood_chunk(index: int) -> bytes:
    """Chunk ``index`` of the flood: its number, then a fixed pattern (so reordering changes the checksum)."""
    head = b"%016d" % index
    rest = FLOOD_CHUNK - len(head)
    return head + bytes(range(256)) * (rest // 256) + b"\n" * (rest % 256)


def flood(total: int) -> None:
    """Write ``total`` bytes (a whole number of ``FLOOD_CHUNK`` chunks) to fd 1."""
    for index in range(total // FLOOD_CHUNK):
        view = memoryview(flood_chunk(index))
        while view:
            view = view[os.write(1, view):]


def close_std_streams_then_exit() -> None:
    """Say something, close fds 1 and 2 (and Python's streams), then return: exit code 0."""
    os.write(1, b"before closing\n")
    os.write(2, b"stderr before closing\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os.close(1)
    os.close(2)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - Python writes at exit


def start_grandchild_then_sleep(pid_file: str) -> None:
    """Start a grandchild (a plain ``sleep``, no watchdog of its own), record its pid, then sleep."""
    grandchild = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = pid_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(grandchild.pid))
    os.replace(tmp, pid_file)
    time.sleep(1000)


def ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    processing.sendToParent("ready")
    time.sleep(1000)


def counted_line(index: int) -> bytes:
    return b"%09d\n" % index


def write_counted_lines_forever(cue_file: str, cue_after: int) -> None:
    """Write numbered lines without end; once ``cue_after`` bytes are written, create ``cue_file``."""
    written = 0
    index = 0
    cued = False
    while True:
        block = b"".join(counted_line(i) for i in range(index, index + 100))
        index += 100
        view = memoryview(block)
        while view:
            view = view[os.write(1, view):]
        written += len(block)
        if not cued and written >= cue_after:
            with open(cue_file + ".tmp", "w") as f:  # then renamed: the cue exists only once it says how much
                f.write(str(written))
            os.replace(cue_file + ".tmp", cue_file)
            cued = True


def _explode_outside(parent_pid: int) -> object:
    if os.getpid() != parent_pid:
        raise RuntimeError("this object cannot be loaded in the child")
    return "loaded in the parent"


class LoadsOnlyInTheParent:
    """Pickles fine; unpickling it raises RuntimeError in any process but its creator."""

    def __init__(self) -> None:
        self.parent_pid = os.getpid()

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_explode_outside, (self.parent_pid,))


def echo(*args: object) -> None:
    processing.sendToParent(args)


def mixed_workload(kind: str) -> None:
    """One of the workloads of the 1,000-process run."""
    if kind == "noop":
        return
    if kind == "print":
        print("hello from", os.getpid(), flush=True)
        os.write(2, b"err\n")
        return
    if kind == "raise":
        raise ValueError("crash on purpose")
    if kind == "os_exit":
        os._exit(3)
    if kind == "segv":
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(60)
    if kind == "sleep":
        time.sleep(1000)
    raise AssertionError(kind)


def send_fork_then_send() -> None:
    """Send, let an os.fork() copy try to send too, then send again; report what the copy met."""
    processing.sendToParent("before the fork")
    pid = os.fork()
    if pid == 0:
        try:
            processing.sendToParent("from the copy")
        except processing.ProcessStateError:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    processing.sendToParent(("the copy's exit code", os.waitstatus_to_exitcode(status)))
    processing.sendToParent("after the fork")


def write_partial_then_wait() -> None:
    """Write a partial line, then wait for the parent to say it saw it."""
    print("partial", end="")
    processing.receiveFromParent(timeout=60)
    print(" line")


def report_inherited_by_exec() -> None:
    """Which of this child's descriptors a program it execs inherits (close_fds=False keeps them all)."""
    import json

    channel_fd = processing.sendToParent.__globals__["channel"]._sock.fileno()
    code = "import os, json; print(json.dumps(sorted(int(fd) for fd in os.listdir('/proc/self/fd'))))"
    result = subprocess.run([sys.executable, "-c", code], close_fds=False, capture_output=True, text=True,
                            check=True)
    processing.sendToParent((channel_fd, json.loads(result.stdout)))


def report_umask_environ_cwd(name: str) -> None:
    mask = os.umask(0)
    os.umask(mask)
    processing.sendToParent((mask, os.environ.get(name), os.getcwd()))
