"""A real Dask LocalCluster on loopback for the tests, run in a helper process, and what tests ask of it.

In a helper process, its scheduler, workers and their resource tracker never
become children of the test process, so the usual left-behind checks stay exact.
The workers see only what is installed, not the test modules: every function
sent to them here is a lambda, which Dask's cloudpickle sends by value.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import distributed
from support import is_zombie, os_children, wait_until

import processing
from processing.remote import get_client

#: The workers of the session's LocalCluster (one thread each).
WORKERS = 2

_CLUSTER = """
import sys
import distributed

with distributed.LocalCluster(n_workers={workers}, processes=True, threads_per_worker={threads},
                              host="127.0.0.1", dashboard_address=None) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the test closes it
"""


@dataclass
class Cluster:
    """A running LocalCluster: its scheduler address, a client of the test process, the helper process,
    and the file its scheduler and workers log to."""

    address: str
    client: distributed.Client
    helper: subprocess.Popen[str]
    log: Path

    def workers(self) -> list[str]:
        return list(self.client.scheduler_info()["workers"])

    def worker_pid(self, address: str) -> int:
        """The pid of the worker process at ``address`` (on this machine: the cluster is on loopback)."""
        return self.client.run(os.getpid, workers=[address])[address]

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Occupy every thread of every worker, so that a task submitted meanwhile stays pending.

        Returns once all the blockers execute (not merely once they are
        submitted), so that the scheduler cannot give a later task a free thread.
        """
        release = distributed.Event(client=self.client)
        workers = self.client.scheduler_info()["workers"]
        blockers = [self.client.submit(release.wait, 60, workers=[worker], pure=False)
                    for worker, info in workers.items() for _ in range(info["nthreads"])]
        executing = lambda dask_worker: len(dask_worker.state.executing)  # noqa: E731 - sent by value
        try:
            assert wait_until(lambda: sum(self.client.run(executing).values()) == len(blockers), limit=30), \
                "the blockers did not all start"
            yield
        finally:
            release.set()
            for blocker in blockers:
                blocker.result(30)

    def leftovers(self, expected: Iterable[int] = ()) -> dict[str, object]:
        """What a test left: ``processing`` children still running on a worker, and children of the
        test process other than the cluster's helper and the ``expected`` pids (empty: clean)."""
        running_children = lambda: [repr(child) for child in processing.activeChildren()]  # noqa: E731
        problems: dict[str, object] = {}
        remote = {worker: names for worker, names in self.client.run(running_children).items() if names}
        allowed = {self.helper.pid, *expected}
        strays = [c.pid for c in os_children() if c.pid not in allowed and not is_zombie(c)]
        if remote:
            problems["still running on the workers"] = remote
        if strays:
            problems["children of the test process"] = strays
        return problems

    def wait_clean(self, expected: Iterable[int] = (), limit: float = 15) -> dict[str, object]:
        """Wait up to ``limit`` seconds for :meth:`leftovers` to be empty; return what is still left."""
        expected = tuple(expected)
        problems: dict[str, object] = {}

        def clean() -> bool:
            problems.clear()
            problems.update(self.leftovers(expected))
            return not problems

        wait_until(clean, limit=limit, interval=0.05)
        return problems


@contextlib.contextmanager
def local_cluster(log: Path, *, workers: int, threads: int = 1) -> Iterator[Cluster]:
    """Yield the running cluster once every worker is up; stop it (and its helper process) after."""
    with open(log, "w") as stderr:
        helper = subprocess.Popen(
            [sys.executable, "-c", _CLUSTER.format(workers=workers, threads=threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    client = None
    try:
        ready, _, _ = select.select([helper.stdout], [], [], 60)
        address = helper.stdout.readline().strip() if ready else ""  # type: ignore[union-attr]
        assert address.startswith("tcp://"), f"the LocalCluster did not start:\n{log.read_text()}"
        client = get_client(address)
        client.wait_for_workers(workers, timeout=60)
        yield Cluster(address, client, helper, log)
    finally:
        if client is not None:
            client.close()
        helper.stdin.close()  # type: ignore[union-attr]
        try:
            helper.wait(30)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
