"""Overhead of a remote process over a plain Dask task, on the same LocalCluster, in one run.

For a no-op, ``RemoteProcess(...).start(); join()`` (a real child process on a
worker, its exit code relayed back) is timed side by side with
``client.submit(noop).result()``, alternating the two so that both see the
same machine load; the figure is the ratio of the medians. Target (issue 6):
<= 1.5x. Run: ``python benchmarks/bench_cluster.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import distributed

from processing.remote import RemoteProcess


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    rounds = 20 if parser.parse_args().quick else 200
    with (
        distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        contenders = {
            "client.submit(noop).result()": lambda: plain_task(client),
            "RemoteProcess start+join": lambda: remote_process(client),
            "  ... with output= captured": lambda: remote_process(client, output=lambda stream, data: None),
        }
        for run in contenders.values():  # warm up: the worker's fork server, imports, connections
            for _ in range(5):
                run()
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, run in contenders.items():
                time.sleep(0.005)  # a notebook starts a process now and then, not back to back
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
