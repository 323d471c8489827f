"""Targets run in child processes by the tests.

They live in a small importable module (not in the test modules) so that a
spawned or fork-server child only imports this file, the standard library and
``processing`` -- never pytest -- and so that they travel by reference, the
plain-pickle fast path. Interactively defined targets (lambdas, closures,
``__main__``) are exercised separately.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import processing

#: Set at run time by a test in the parent: a forked child sees the new value,
#: a spawned or fork-server child imports this module afresh and does not.
MARK = None

_NO_ARGUMENT = object()


def noop() -> None:
    pass


def sleep_forever() -> None:
    time.sleep(1000)


def wait_for_file(path: str, limit: float = 60.0) -> None:
    """Return once ``path`` exists (a cue from the parent); give up after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(99)
        time.sleep(0.005)


def call_sys_exit(*args: object) -> None:
    sys.exit(*args)


def raise_value_error(text: str) -> None:
    raise ValueError(text)


def hard_exit(code: int) -> None:
    os._exit(code)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def die_by_signal(signum: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for SIGSEGV
    if signum not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(signum, signal.SIG_DFL)  # pytest's faulthandler may hook SIGSEGV in a forked child
    os.kill(os.getpid(), signum)
    time.sleep(60)


def send(*objects: object) -> None:
    for obj in objects:
        processing.sendToParent(obj)


def report_identity() -> None:
    me = processing.currentProcess()
    processing.sendToParent(
        {
            "name": me.name,
            "getName": me.getName(),
            "pid": me.pid,
            "getpid": os.getpid(),
            "ppid": os.getppid(),
            "daemon": me.isDaemon(),
            "authkey": me.getAuthKey(),
            "is_alive": me.isAlive(),
            "class": type(me).__name__,
            "mark": MARK,
            "pgid": os.getpgid(0),
            "current_is_current_process": processing.current_process() is me,
        }
    )


def start_children(count: int, method: str | None = None, **kwargs: object) -> None:
    """Start ``count`` children that report their identity; send the reports and names to the parent."""
    children = [processing.Process(target=report_identity, method=method, **kwargs) for _ in range(count)]
    names_at_construction = [child.name for child in children]
    for child in children:
        child.start()
    for child in children:
        child.join()
    processing.sendToParent(
        {
            "me": processing.currentProcess().name,
            "names": names_at_construction,
            "reports": [child.messages[0] if child.messages else None for child in children],
            "exitcodes": [child.exitcode for child in children],
        }
    )


def start_grandchildren(method: str | None = None) -> None:
    """Start one child that itself starts two children; forward everything to the parent."""
    child = processing.Process(target=start_children, args=(2, method), method=method)
    child.start()
    child.join()
    processing.sendToParent({"me": processing.currentProcess().name, "child": child.name,
                             "child_messages": child.messages, "child_exitcode": child.exitcode})


def try_join_self() -> None:
    try:
        processing.currentProcess().join()
    except Exception as error:
        processing.sendToParent((type(error).__name__, str(error)))
    else:
        processing.sendToParent(None)


def misuse_foreign_process(other: processing.Process) -> None:
    """Call the creator-only methods of a Process object this process did not create."""
    results = {}
    for action in ("start", "join", "isAlive"):
        try:
            getattr(other, action)()
        except Exception as error:
            results[action] = (type(error).__name__, str(error))
        else:
            results[action] = None
    processing.sendToParent(results)


def write_lines(count: int) -> None:
    for i in range(count):
        print(f"line {i}")


def write_bytes(total: int, chunk: int = 65536) -> None:
    pattern = bytes(range(256)) * (chunk // 256)
    written = 0
    while written < total:
        piece = pattern[: min(chunk, total - written)]
        view = memoryview(piece)
        while view:
            view = view[os.write(1, view):]
        written += len(piece)


def write_everywhere() -> None:
    """Python-level, fd-level, C-level and grandchild output, on both streams."""
    import ctypes

    print("print to stdout", flush=True)
    print("print to stderr", file=sys.stderr, flush=True)
    os.write(1, b"os.write to fd 1\n")
    os.write(2, b"os.write to fd 2\n")
    libc = ctypes.CDLL(None)
    libc.puts(b"puts from C")
    libc.fflush(None)
    os.system("echo echo from a grandchild; echo grandchild stderr >&2")


def write_then_sigkill() -> None:
    os.write(1, b"last words\n")
    os.write(2, b"last error\n")
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)


def burst_then_die(size: int, signum: int | None) -> None:
    """Enlarge the stdout pipe, fill it in one go and die at once (by ``signum``, or a plain return).

    The data is then still in the pipe when the parent learns of the exit, so
    the parent must drain it before it reports the exit or lets join() return.
    """
    import fcntl

    try:
        fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, size)
    except OSError:
        pass  # a smaller pipe: the child blocks now and then, the test still holds
    write_bytes(size, chunk=size)
    if signum is not None:
        die_by_signal(signum)


def write_split_utf8() -> None:
    data = "h\u00e9llo \u20ac\n".encode()
    for i in range(len(data)):
        os.write(1, data[i:i + 1])
        time.sleep(0.001)


def ignore_sigterm_then_sleep() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    processing.sendToParent("ready")
    time.sleep(1000)


def connect_and_send(address: object, text: str, authkey: object = None) -> None:
    """Connect to a Listener (with this process's key unless given) and send ``text``; exit 7 if refused."""
    from processing import connection

    try:
        conn = connection.Client(address, authkey=authkey)
    except processing.AuthenticationError:
        sys.exit(7)
    with conn:
        conn.send(text)
        conn.recv()  # wait for the parent's acknowledgement


def _my_channel():
    """White-box: this child's end of the control channel, the ``processing.channel.ChildChannel``
    that ``sendToParent`` uses (a global of its module)."""
    from processing.channel import ChildChannel

    send_globals = processing.sendToParent.__globals__
    [channel] = [value for value in send_globals.values() if isinstance(value, ChildChannel)]
    return channel


def forge_message() -> None:
    """Send one message with the real key, then one signed with a wrong key, then one more."""
    processing.sendToParent("genuine")
    signer = _my_channel()._signer
    key = signer._key
    signer._key = b"not the key"
    processing.sendToParent("forged")
    signer._key = key
    try:
        processing.sendToParent("after the forgery")
    except BrokenPipeError:
        pass  # the parent may already have closed the channel after the forgery


def forge_then_carry_on() -> None:
    """Have one message rejected, wait until the parent has closed the channel, then end normally."""
    forge_message()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            processing.sendToParent("ping")
        except BrokenPipeError:
            break
        time.sleep(0.005)
    else:
        sys.exit(3)
    time.sleep(0.2)  # room for a wrongly fired parent-death guard to act


class Unloadable:
    """Pickles fine; unpickling it raises ValueError."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (int, ("not a number",))


def send_unloadable(cue: str | None = None) -> None:
    if cue is not None:
        wait_for_file(cue)
    processing.sendToParent(Unloadable())


UNLOADABLE = "<an Unloadable made in the child>"


def send_in_one_write(*items: tuple[object, bool]) -> None:
    """Send ``(obj, forged)`` items as consecutive frames in one write, so the parent reads them together.

    ``UNLOADABLE`` stands for an ``Unloadable()`` made here (it could not travel as an argument).
    """
    import socket

    channel = _my_channel()
    real_sock, real_key = channel._sock, channel._signer._key
    recorder, sink = socket.socketpair()
    try:
        channel._sock = sink
        for obj, forged in items:
            channel._signer._key = b"not the key" if forged else real_key
            processing.sendToParent(Unloadable() if obj == UNLOADABLE else obj)
    finally:
        channel._sock, channel._signer._key = real_sock, real_key
    sink.close()
    frames = b""
    while chunk := recorder.recv(1 << 20):
        frames += chunk
    recorder.close()
    real_sock.sendall(frames)


def change_key_then_send(new_key: str) -> None:
    processing.currentProcess().setAuthKey(new_key)
    processing.sendToParent(processing.currentProcess().getAuthKey())


def report_grandchild_key(method: str | None = None) -> None:
    child = processing.Process(target=report_identity, method=method)
    child.start()
    child.join()
    processing.sendToParent((processing.currentProcess().getAuthKey(), child.messages[0]["authkey"]))


def report_grandchild_daemon(method: str | None = None) -> None:
    child = processing.Process(target=report_identity, method=method)
    flag_before_start = child.isDaemon()
    child.start()
    child.join()
    processing.sendToParent((processing.currentProcess().isDaemon(), flag_before_start,
                             child.messages[0]["daemon"]))


class Recorder(processing.Process):
    """A Process subclass defined in an importable module."""

    def __init__(self, value: object = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.value = value

    def run(self) -> None:
        processing.sendToParent(("Recorder.run", self.value, type(processing.currentProcess()).__name__))


class Payload:
    """A plain importable class, to send an instance as an argument."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


def echo(*args: object, **kwargs: object) -> None:
    processing.sendToParent((args, kwargs))


def echo_from_parent() -> None:
    """Send back every object the parent sends, until it sends ``"stop"``."""
    while (obj := processing.receiveFromParent(timeout=30)) != "stop":
        processing.sendToParent(("echo", obj))


def report_receive_errors() -> None:
    """Report what receiveFromParent raises: on a timeout, then on a forged frame (sent by the test)."""
    errors = []
    try:
        processing.receiveFromParent(timeout=0.05)
    except TimeoutError as error:
        errors.append(type(error).__name__)
    processing.sendToParent(("ready", errors))
    try:
        processing.receiveFromParent(timeout=30)
    except processing.AuthenticationError as error:
        errors.append(type(error).__name__)
    processing.sendToParent(("done", errors))


def report_shared_array(array: object) -> None:
    """Say what the child got: the sum, whether the array is writable, whether a shared-memory file of
    the parent backs it; then write to it (the parent's copy must not change)."""
    with open("/proc/self/maps") as maps:
        mapped = "memfd:processing-buffers" in maps.read()
    processing.sendToParent((float(array.sum()), bool(array.flags.writeable), mapped))
    array[0] = 42.0


def report_big_values_from_parent() -> None:
    """Receive what the parent sends until ``"stop"``, and say of each what arrived: an array's sum,
    whether it is writable and backed by a mapping (not a bytes copy); then write to it (the parent's
    copy must not change). Last, how many shared-memory files the child still holds open."""
    import os

    while (obj := processing.receiveFromParent(timeout=60)) != "stop":
        _report_arrival(obj)
    del obj
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            held += "memfd:processing-buffers" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the listing's own descriptor, closed since
    processing.sendToParent(("held", held))


def _report_arrival(obj: object) -> None:
    import mmap

    if isinstance(obj, tuple) and obj[0] == "array":
        array = obj[1]
        base = array
        while getattr(base, "base", None) is not None:
            base = base.base
        mapped = isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
        processing.sendToParent(("array", float(array.sum()), bool(array.flags.writeable), mapped))
        array[0] = 42.0
    elif isinstance(obj, tuple) and obj[0] == "frame":
        processing.sendToParent(("frame", int(obj[1]["a"].sum()), float(obj[1]["b"].sum())))
    else:
        processing.sendToParent(obj)


def send_big_values(mib: int) -> None:
    """Send the parent a big array and a DataFrame (out of band, beside the frame), then a small
    message: the parent must get all three, in order."""
    import numpy as np
    import pandas as pd

    array = np.arange(mib * (1 << 20) // 8, dtype=np.float64)
    processing.sendToParent(("array", array))
    frame = pd.DataFrame({"a": np.arange(1 << 18, dtype=np.int64), "b": np.ones(1 << 18)})
    processing.sendToParent(("frame", frame))
    processing.sendToParent("after")


def send_big_then_wait(mib: int) -> None:
    """Send a big array, then wait to be killed (the parent must not have taken the memory yet)."""
    processing.sendToParent(bytearray(mib << 20))
    time.sleep(60)
