"""Overhead of a remote process and of a ``%%process --cluster`` cell over a plain Dask task, in one run.

For a no-op on the same LocalCluster and through the same Client,
``RemoteProcess(...).start(); join()`` (a real child process on a worker, its
exit code relayed back) and a ``%%process --cluster-client client --wait``
cell whose body is ``pass`` (the magic in an in-process IPython shell:
options, compile, names to send, the text status lines, the child on the
worker, the wait) are timed side by side with ``client.submit(noop).result()``,
in turn, so that all see the same machine load, each after a pause longer than
the Client's 10 ms batching interval, as cells come seconds apart; the figure
is the ratio of the medians. Target (issue 6): <= 1.5x.

A cell's child needs ``ipyprocessing.child``; the cell asks the worker's fork
server to preload it (``RemoteProcess(preload=...)``), so only a worker's first
cell pays the import, and the warm-up takes that. Run:
``python benchmarks/bench_cluster.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time

import distributed
from IPython.core.interactiveshell import InteractiveShell

from processing.remote import RemoteProcess

#: Seconds between two timed runs: longer than the Client's 10 ms batching interval (see main).
PAUSE = 0.025


def noop() -> None:
    pass


def plain_task(client: distributed.Client) -> None:
    client.submit(noop, pure=False).result()


def remote_process(client: distributed.Client, **options: object) -> None:
    process = RemoteProcess(target=noop, cluster=client, **options)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"{process!r} failed: {process.failure}")


def process_cell(shell: InteractiveShell) -> None:
    """A ``%%process --cluster-client client --wait`` no-op cell, as a notebook runs it (its status lines
    discarded)."""
    with contextlib.redirect_stdout(io.StringIO()):
        shell.run_cell_magic("process", "--cluster-client client --wait --proc bench_cell", "pass\n")
    cell = shell.user_ns["bench_cell"]
    if cell.exitcode != 0:
        raise RuntimeError(f"{cell!r} failed: {cell.failure or cell.output.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    options = parser.parse_args()
    rounds = 20 if options.quick else 200
    with (
        distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipyprocessing")
        shell.user_ns["client"] = client  # the same client as the others: same connection, same batching
        contenders = {
            "client.submit(noop).result()": lambda: plain_task(client),
            "RemoteProcess start+join": lambda: remote_process(client),
            "  ... with output= captured": lambda: remote_process(client, output=lambda stream, data: None),
            "%%process --cluster-client --wait": lambda: process_cell(shell),
        }
        for run in contenders.values():  # warm up: the worker's fork server, imports, connections
            for _ in range(5):
                run()
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, run in contenders.items():
                # A notebook starts a process now and then, not back to back; and a Client batches its
                # messages to the scheduler every 10 ms, so a shorter pause would charge whichever
                # contender follows another with up to 10 ms of waiting for the batch.
                time.sleep(PAUSE)
                began = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - began)
    base = statistics.median(samples["client.submit(noop).result()"])
    print(f"{rounds} rounds, {os.cpu_count()} CPUs, LocalCluster with 1 worker process, 1 thread")
    print(f"{'':32} {'median':>9} {'p90':>9} {'ratio':>6}")
    for name, times in samples.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:32} {median * 1e3:7.2f}ms {p90 * 1e3:7.2f}ms {median / base:5.2f}x")


if __name__ == "__main__":
    main()
