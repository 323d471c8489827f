"""The extension's parts on their own: the output tail, the throttle, exit words, the namespace analysis."""

from __future__ import annotations

import pickle
import sys
import threading
import time
import types

import pytest
from support import HERE, run_python

from ipyprocessing.cell.handle import CellProcess
from ipyprocessing.cell.namespace import NamespaceError, globals_used, names_in_magics, ship
from ipyprocessing.cell.target import CellTarget, ShellSettings
from ipyprocessing.view import output
from ipyprocessing.view.output import OutputLog, Tail
from ipyprocessing.view.throttle import Throttle
from ipyprocessing.words import describe_exit, format_bytes, format_elapsed

pytestmark = pytest.mark.timeout(60)


def render(*chunks: bytes | tuple[str, bytes], hint: str = "") -> str:
    tail = Tail(max_lines=3)
    tail.feed([chunk if isinstance(chunk, tuple) else ("stdout", chunk) for chunk in chunks])
    return tail.render(hint)


def test_tail_keeps_the_last_lines_and_counts_the_rest() -> None:
    assert render(b"a\nb\n") == "a\nb"
    assert render(b"1\n2\n3\n4\n5\nsix") == "[2 earlier lines not shown]\n3\n4\n5\nsix"
    assert render(b"1\n2\n3\n4\n", hint="; h.output") == "[1 earlier lines not shown; h.output]\n2\n3\n4"


def test_carriage_return_overwrites_the_line_like_a_terminal() -> None:
    frames = b"".join(b"\r%3d%%" % i for i in range(101))
    assert render(frames, b"\ndone\n") == "100%\ndone"
    assert render(b"abcdef\rxy") == "xycdef"
    assert render(b"abc\r", b"d") == "dbc"
    assert render(b"windows\r\nline\r\n") == "windows\nline"


def test_both_streams_share_one_screen_in_arrival_order() -> None:
    assert render(("stdout", b"out\n"), ("stderr", b"err\n"), ("stdout", b"more")) == "out\nerr\nmore"


def test_utf8_split_across_chunks_is_decoded_whole() -> None:
    data = "héllo wörld\n".encode()
    assert render(*(data[i:i + 1] for i in range(len(data)))) == "héllo wörld"


def test_a_flood_renders_only_its_end() -> None:
    lines = b"".join(b"%d\n" % i for i in range(200_000))
    tail = Tail(max_lines=3)
    tail.feed([("stdout", lines[i:i + 65536]) for i in range(0, len(lines), 65536)])
    assert tail.render() == "[199,997 earlier lines not shown]\n199997\n199998\n199999"


def test_a_giant_line_is_cut() -> None:
    assert len(render(b"x" * (output.MAX_LINE_CHARS * 3))) == output.MAX_LINE_CHARS


@pytest.mark.parametrize("spill", [output.SPILL, 4])
def test_output_log_keeps_everything_in_order(spill: int) -> None:
    log = OutputLog(spill=spill)
    for stream, data in (("stdout", b"ab"), ("stdout", b"c"), ("stderr", b"de"), ("stdout", b"f")):
        log.append(stream, data)
    assert (log.join(), log.join("stdout"), log.join("stderr")) == (b"abcdef", b"abcf", b"de")
    log.append("stderr", b"g")
    assert log.join() == b"abcdefg"


def test_output_log_past_a_full_disk_keeps_every_byte_in_memory_and_says_so() -> None:
    """Fails before: past the spill size the log's file write raised (EFBIG here, ENOSPC on a full /tmp),
    the monitor lost the chunk, and .output lost it too, silently."""
    result = run_python(
        """
        import hashlib, resource, signal
        import processing, proc_targets
        from ipyprocessing.view.output import OutputLog

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
        # the temporary file fills up at 256 KiB
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
        log = OutputLog(spill=64 * 1024)
        p = processing.Process(target=proc_targets.write_bytes, args=(2 << 20,), method="fork",
                               output=log.append)
        p.start()
        p.join()
        data = log.join()
        expected = (bytes(range(256)) * 256) * 32
        print(p.exitcode, len(data), data == expected)
        print(log.problem)
        """,
        env={"PYTHONPATH": HERE},
    )
    assert result.returncode == 0, result.stderr
    first, problem = result.stdout.splitlines()
    assert first == f"0 {2 << 20} True"
    assert problem.startswith("its output is kept in the kernel's memory") and "File too large" in problem


class Counter:
    def __init__(self) -> None:
        self.flushes = 0
        self.flushed = threading.Event()

    def flush(self) -> None:
        self.flushes += 1
        self.flushed.set()


def test_throttle_flushes_a_lone_mark_and_coalesces_a_burst() -> None:
    throttle = Throttle(interval=0.05)
    lone = Counter()
    throttle.mark(lone)
    assert lone.flushed.wait(10)
    burst = Counter()
    for _ in range(10_000):
        throttle.mark(burst)
    assert burst.flushed.wait(10)
    # Not synchronisation: the pause lets a throttle that does not coalesce show its extra flushes.
    time.sleep(3 * throttle.interval)
    assert 1 <= burst.flushes < 100


@pytest.mark.parametrize(("exitcode", "words"), [
    (0, "finished"),
    (1, "the cell raised an exception"),
    (3, "sys.exit(3)"),
    (-9, "killed by SIGKILL, often the out-of-memory killer"),
    (-11, "segmentation fault"),
    (-15, "terminated by SIGTERM"),
    (-10, "killed by SIGUSR1"),
])
def test_exit_codes_in_words(exitcode: int, words: str) -> None:
    assert words in describe_exit(exitcode)


def test_elapsed_and_sizes_read_naturally() -> None:
    assert [format_elapsed(s) for s in (4.25, 185, 7620)] == ["4.2 s", "3 min 05 s", "2 h 07 min"]
    assert [format_bytes(n) for n in (512, 2048, 3 * 1024**2 // 2)] == ["512 B", "2 KB", "1.5 MB"]


def code_of(source: str) -> types.CodeType:
    return compile(source, "<test>", "exec")


def test_globals_used_reads_loads_in_nested_code_but_not_attributes() -> None:
    source = (
        "import os\n"
        "x = data.attr + y\n"
        "def f(a):\n    return helper(a) + a\n"
        "class C:\n    v = klass_level\n"
        "[comp for _ in range(3)]\n"
        "del gone\n"
    )
    used = globals_used(code_of(source))
    assert {"data", "y", "helper", "klass_level", "comp", "range", "gone"} <= used
    assert not {"attr", "os", "x", "f", "C", "a", "v"} & used


def test_ship_sends_used_values_and_modules_by_name() -> None:
    value = [1, 2]
    user_ns = {"m": sys, "value": value, "shared": value, "In": [], "__name__": "__main__", "other": object()}
    shipment, files = ship(user_ns, {"m", "value", "shared", "In", "__name__", "print"}, [],
                           hidden={"In": user_ns["In"]}, method="spawn")
    assert shipment.modules == {"m": "sys"} and files == set()
    values = pickle.loads(shipment.values)
    assert values == {"value": [1, 2], "shared": [1, 2]} and values["value"] is values["shared"]


def test_ship_sends_names_in_magics_when_it_can_and_the_files_of_functions() -> None:
    source = "def f(x):\n    return x\n"
    namespace: dict = {}
    exec(compile(source, "/tmp/ipykernel_0/cell.py", "exec"), namespace)
    user_ns = {"f": namespace["f"], "x": 3, "folder": "/tmp", "lock": threading.Lock(), "unused": 1}
    transformed = ("get_ipython().run_line_magic('time', 'f(x)')\n"
                   "get_ipython().system('ls {folder} $lock')\n"
                   "get_ipython().run_line_magic('env', 'A=1')\n")
    optional = names_in_magics(transformed)
    assert {"f", "x", "folder", "lock"} <= optional and "A" not in optional and "unused" not in optional
    shipment, files = ship(user_ns, set(), [], hidden={}, method="spawn", optional=optional)
    assert set(pickle.loads(shipment.values)) == {"f", "x", "folder"}  # the lock cannot go: skipped
    assert files == {"/tmp/ipykernel_0/cell.py"}


def test_ship_names_what_cannot_be_sent() -> None:
    user_ns = {"lock": threading.Lock(), "fine": 1, "made": types.ModuleType("made")}
    with pytest.raises(NamespaceError, match=r"cannot send 'lock' \(lock: TypeError"):
        ship(user_ns, {"lock", "fine"}, [], hidden={}, method="forkserver")
    with pytest.raises(NamespaceError, match=r"'made'.*not imported from a file"):
        ship(user_ns, {"made"}, [], hidden={}, method="spawn")
    with pytest.raises(NamespaceError, match="--push 'absent'"):
        ship(user_ns, set(), ["absent"], hidden={}, method="spawn")


def test_a_cell_process_sends_none_of_its_parent_side_state() -> None:
    target = CellTarget("", ShellSettings(1, None, None, {}, False), ("x",), namespace=None)
    process = CellProcess(target, user_ns={"big": object()})
    state = process.__getstate__()
    assert not {"_log", "_view", "_user_ns", "_timer", "pulled"} & set(state)
