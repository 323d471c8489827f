"""Start-up cost of a child process: processing versus stdlib multiprocessing versus raw os.fork.

Every figure is measured in this one run and printed as a ratio to raw
``os.fork`` + ``waitpid`` measured beside it, because absolute times on shared
machines mean little. Run: ``python benchmarks/bench_start.py [--quick]``.

Targets (issue 2):
- a start method that does not fork the caller: <= 1.5x raw fork, flat as the
  parent's heap grows from 0 to 2 GiB, and not re-running ``__main__``;
- 100 processes started concurrently then joined: <= 2x raw fork for the same;
- ``import processing`` <= 30 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import processing

#: Rest before each latency sample: a notebook starts a process now and then, and at
#: rest the fork server has a warm, rehearsed child ready. Back-to-back figures are printed too.
REST = 0.01
MAIN_RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".main_runs")


def noop() -> None:
    pass


def raw_fork() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def processing_start(method: str):
    def run() -> None:
        p = processing.Process(target=noop, method=method)
        p.start()
        p.join()

    return run


def stdlib_start(method: str):
    context = multiprocessing.get_context(method)

    def run() -> None:
        p = context.Process(target=noop)
        p.start()
        p.join()

    return run


def median_ms(func, runs: int, warmup: int = 3, pause: float = 0.0) -> float:
    """Median wall time of ``func()``; ``pause`` seconds of rest before each sample."""
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(runs):
        time.sleep(pause)
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def many_raw(count: int) -> None:
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


def many_processing(method: str, count: int):
    def run() -> None:
        procs = [processing.Process(target=noop, method=method) for _ in range(count)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()

    return run


def many_stdlib(method: str, count: int):
    context = multiprocessing.get_context(method)

    def run() -> None:
        procs = [context.Process(target=noop) for _ in range(count)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()

    return run


def import_ms(module: str, runs: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    samples = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(samples) * 1000


def row(label: str, ms: float, base: float) -> None:
    print(f"  {label:<44} {ms:9.2f} ms   {ms / base:6.2f}x raw fork")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and a 512 MiB heap at most")
    options = parser.parse_args()
    runs = 30 if options.quick else 100
    heaps = [0, 512] if options.quick else [0, 512, 1024, 2048]
    multiprocessing.set_forkserver_preload([__name__])

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"start+join of a no-op, median of {runs}, each after {REST * 1000:.0f} ms at rest:")
    ballast = []
    for heap_mib in heaps:
        while len(ballast) < heap_mib // 64:
            ballast.append(bytearray(os.urandom(1)) * (64 << 20))
        print(f"\nparent heap {heap_mib} MiB:")
        base = median_ms(raw_fork, runs, pause=REST)
        row("raw os.fork + waitpid", base, base)
        for method in ("forkserver", "fork", "spawn"):
            if method == "spawn" and heap_mib:
                continue
            method_runs = max(10, runs // 5) if method == "spawn" else runs
            row(f"processing {method}", median_ms(processing_start(method), method_runs, pause=REST), base)
            row(
                f"stdlib multiprocessing {method}",
                median_ms(stdlib_start(method), method_runs, pause=REST),
                base,
            )
    ballast.clear()

    print("\nback to back (no rest between starts: the fork server hands over a spare it forked while")
    print("the previous child ran, so the spare has had no time to rehearse), median of", runs)
    base = median_ms(raw_fork, runs)
    row("raw os.fork + waitpid", base, base)
    row("processing forkserver", median_ms(processing_start("forkserver"), runs), base)
    row("stdlib multiprocessing forkserver", median_ms(stdlib_start("forkserver"), runs), base)

    count = 100
    print(f"\n{count} processes started concurrently, then joined (median of 5):")
    base = median_ms(lambda: many_raw(count), 5, warmup=1)
    row(f"raw os.fork x{count}", base, base)
    row(f"processing forkserver x{count}", median_ms(many_processing("forkserver", count), 5, 1), base)
    row(f"stdlib forkserver x{count}", median_ms(many_stdlib("forkserver", count), 5, 1), base)
    row(f"processing fork x{count}", median_ms(many_processing("fork", count), 5, 1), base)

    print("\nimport time (fresh interpreter, median of 10):")
    ours = import_ms("processing", 10)
    theirs = import_ms("multiprocessing", 10)
    print(f"  import processing      {ours:6.1f} ms (target <= 30 ms)")
    print(f"  import multiprocessing {theirs:6.1f} ms")

    print("\n__main__ re-runs per child (a script that counts its own executions):")
    print(
        f"  processing forkserver: {main_reruns('processing')}   stdlib forkserver: {main_reruns('stdlib')}"
    )

    preloaded = [name for name in ("numpy", "pandas", "IPython") if importlib.util.find_spec(name)]
    if preloaded:
        # What a notebook's fork server holds once its cells have sent numpy and pandas by name
        # (ipyprocessing preloads them) and the extension preloaded IPython.
        processing.setForkserverPreload(preloaded)
        print(f"\nforkserver at rest with {', '.join(preloaded)} preloaded in the server (goal <= 1.5x):")
        base = median_ms(raw_fork, runs, pause=REST)
        row("raw os.fork + waitpid", base, base)
        at_rest = median_ms(processing_start("forkserver"), runs, pause=REST)
        row("processing forkserver, preloaded", at_rest, base)
        # Where the rest goes: a child of a process holding these modules takes longer to end (its
        # address space is torn down before it can be reaped), so does a raw fork of one that holds them.
        for name in preloaded:
            importlib.import_module(name)
        loaded = median_ms(raw_fork, runs, pause=REST)
        print(f"  {'raw os.fork + waitpid, these modules loaded':<44} {loaded:9.2f} ms   "
              f"forkserver preloaded: {at_rest / loaded:.2f}x this")


def main_reruns(kind: str) -> int:
    """Start 5 forkserver children from a script and count how often the script's body ran."""
    script = f"""
import os, sys
with open({MAIN_RUNS!r}, "a") as f:
    f.write("x")
def noop(): pass
if __name__ == "__main__":
    if {kind!r} == "processing":
        import processing as mod
        make = lambda: mod.Process(target=noop, method="forkserver")
    else:
        import multiprocessing as mod
        make = lambda: mod.get_context("forkserver").Process(target=noop)
    for _ in range(5):
        p = make(); p.start(); p.join()
"""
    if os.path.exists(MAIN_RUNS):
        os.remove(MAIN_RUNS)
    path = MAIN_RUNS + ".py"
    with open(path, "w") as f:
        f.write(script)
    try:
        subprocess.run([sys.executable, path], check=True)
        with open(MAIN_RUNS) as f:
            return len(f.read()) - 1
    finally:
        for leftover in (path, MAIN_RUNS):
            if os.path.exists(leftover):
                os.remove(leftover)


if __name__ == "__main__":
    main()
