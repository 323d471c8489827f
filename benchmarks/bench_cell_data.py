"""A real cell's costs: the notebook's data and imports, not a no-op (issue 13).

One kernel per DataFrame size, driven through jupyter_client as a front end
drives it, with numpy and pandas imported and a DataFrame of SIZE MiB in the
notebook. For each way of running the cell ``print(df[0].sum())`` (the kernel
itself, ``%%process`` under fork, forkserver and spawn) it measures, side by
side in one run, the median over the repeats of:

- execute to the child's first printed line on IOPub;
- the kernel's peak RSS growth while the cell starts (sampled every 5 ms);
- the child's RSS, as it reports it.

Then, under forkserver, a cell that only uses ``np`` against an import-free cell,
and what is left in ``/dev/shm``. The goals it prints beside the figures:
forkserver within 2x of fork at every size, a numpy-only cell within 1.5x of an
import-free one, the parent's peak growth at most 10% of the data, nothing left
in ``/dev/shm``.

Run: ``python benchmarks/bench_cell_data.py [--sizes 0,200,1024] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import threading
import time
import uuid

import psutil
from bench_kernel import Driver

MIB = 1 << 20
MODES = ("kernel", "fork", "forkserver", "spawn")


class PeakRss:
    """The peak RSS of a process while the block runs, sampled every 5 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.base = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.005)

    @property
    def growth(self) -> int:
        return self.peak - self.base


def first_line(driver: Driver, code: str, marker: str) -> tuple[float, str]:
    """Seconds from sending ``code`` to the first IOPub message that carries ``marker``, and that text."""
    driver.drain()
    began = time.perf_counter()
    driver.client.execute(code)
    deadline = time.time() + 300
    while time.time() < deadline:
        _, message = driver.iopub.get(timeout=300)
        if message["msg_type"] == "execute_input":  # the code itself names the marker
            continue
        text = json.dumps(message["content"])
        if marker in text:
            elapsed = time.perf_counter() - began
            start = text.index(marker)
            return elapsed, text[start:start + 200]
    raise TimeoutError(f"no line with {marker} arrived")


def wait_idle(driver: Driver) -> None:
    """Until no ``%%process`` child of the kernel runs (each cell's child ends by itself)."""
    live = "len([p for p in __import__('ipyprocessing').processes() if p.is_alive()])"
    while driver.value(live) != "0":
        time.sleep(0.05)
    driver.value("__import__('gc').collect()")


def cell(mode: str, body: str) -> str:
    return body if mode == "kernel" else f"%%process --method {mode}\n{body}"


def measure_size(size_mib: int, repeat: int, directory: str) -> dict[str, dict[str, float]]:
    driver = Driver(directory)
    try:
        driver.execute("%load_ext ipyprocessing")
        driver.execute("%config ProcessSettings.warn_send_bytes = 0")  # measured, not warned about
        driver.execute("import numpy as np, pandas as pd, psutil")
        rows = max(1, size_mib * MIB // 8 // 4)
        data = f"np.ones(({rows}, 4))" if size_mib else "{0: [1.0]}"
        driver.execute(f"df = pd.DataFrame({data})")
        pid = int(driver.value("__import__('os').getpid()"))
        figures: dict[str, dict[str, list[float]]] = {mode: {"first": [], "peak": [], "child": []}
                                                      for mode in MODES}
        for mode in MODES:  # a warm-up each: the fork server and its preload, the first spawn
            first_line(driver, cell(mode, "print('WARM', 1)"), "WARM")
            wait_idle(driver)
        for _ in range(repeat):
            for mode in MODES:
                marker = f"LINE-{uuid.uuid4().hex[:8]}"
                body = f"print('{marker}', df[0].sum(), psutil.Process().memory_info().rss, flush=True)"
                with PeakRss(pid) as peak:
                    elapsed, text = first_line(driver, cell(mode, body), marker)
                figures[mode]["first"].append(elapsed)
                figures[mode]["peak"].append(peak.growth)
                figures[mode]["child"].append(int(re.match(rf"{marker} \S+ (\d+)", text)[1]))
                wait_idle(driver)
        medians = {mode: {key: statistics.median(values) for key, values in parts.items()}
                   for mode, parts in figures.items()}
        imports = {}
        for label, body in (("import-free", "print('{m}', 1, flush=True)"),
                            ("numpy-only", "print('{m}', np.ones(3).sum(), flush=True)")):
            times = []
            for _ in range(repeat):
                marker = f"LINE-{uuid.uuid4().hex[:8]}"
                times.append(first_line(driver, cell("forkserver", body.format(m=marker)), marker)[0])
                wait_idle(driver)
            imports[label] = statistics.median(times)
        medians["imports"] = imports
        return medians
    finally:
        driver.close()


def shm_entries() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,200", help="DataFrame sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is printed)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    shm_before = shm_entries()
    print(f"execute to the first printed line of print(df[0].sum()); medians of {args.repeat} runs")
    print(f"{'size':>8s} {'mode':>11s} {'first line':>11s} {'parent peak':>12s} {'child RSS':>10s}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as directory:
            medians = measure_size(size, args.repeat, directory)
        for mode in MODES:
            row = medians[mode]
            print(f"{size:>5d} MiB {mode:>11s} {row['first'] * 1000:>8.1f} ms {row['peak'] / MIB:>8.1f} MiB "
                  f"{row['child'] / MIB:>6.0f} MiB")
        fork, forkserver = medians["fork"]["first"], medians["forkserver"]["first"]
        peak_share = medians["forkserver"]["peak"] / (size * MIB) if size else 0.0
        imports = medians["imports"]
        print(f"{'':>8s} forkserver / fork: {forkserver / fork:.2f}x (goal <= 2x); parent peak while sending "
              f"{peak_share:.0%} of the data (goal <= 10%); numpy-only / import-free cell "
              f"{imports['numpy-only'] / imports['import-free']:.2f}x (goal <= 1.5x)")
    left = shm_entries() - shm_before
    print(f"left in /dev/shm: {sorted(left) if left else 'nothing'}")


if __name__ == "__main__":
    main()
