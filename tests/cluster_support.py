"""A real Dask LocalCluster on loopback for the tests, run in a helper process.

In a helper process, its scheduler, workers and their resource tracker never
become children of the test process, so the usual left-behind checks stay exact.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from processing.remote import get_client

_CLUSTER = """
import sys
import distributed

with distributed.LocalCluster(n_workers={workers}, processes=True, threads_per_worker={threads},
                              host="127.0.0.1", dashboard_address=None) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the test closes it
"""


@contextlib.contextmanager
def local_cluster(
    log: Path, *, workers: int, threads: int = 1
) -> Iterator[tuple[str, object, subprocess.Popen]]:
    """Yield ``(scheduler address, distributed.Client, helper process)`` once every worker is up."""
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
        yield address, client, helper
    finally:
        if client is not None:
            client.close()
        helper.stdin.close()  # type: ignore[union-attr]
        try:
            helper.wait(30)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
