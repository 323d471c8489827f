"""Tests on a real Dask LocalCluster: ``RemoteProcess``, and ``%%process --cluster`` in a shell and a kernel.

One LocalCluster (``WORKERS`` workers of one thread, on loopback) serves the whole
session: ``cluster`` hands it to a test and, after it, checks that the test left it
as it found it: no ``processing`` child still running on a worker, no child of the
test process left, and ``WORKERS`` workers up (a test that kills a worker waits for
the nanny to replace it). It runs in a helper process (see cluster_support), so its
scheduler and workers are not children of the test process.

Every test here is marked ``slow``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_support import WORKERS, Cluster, local_cluster
from support import SESSION_CHILDREN, wait_until


def pytest_itemcollected(item: pytest.Item) -> None:
    item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def running_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with local_cluster(tmp_path_factory.mktemp("cluster") / "cluster.log", workers=WORKERS) as running:
        SESSION_CHILDREN.add(running.helper.pid)
        try:
            yield running
        finally:
            SESSION_CHILDREN.discard(running.helper.pid)


@pytest.fixture
def cluster(running_cluster: Cluster) -> Iterator[Cluster]:
    """The session's LocalCluster, checked after the test (see the module's docstring)."""
    yield running_cluster
    problems = running_cluster.wait_clean()
    if not wait_until(lambda: len(running_cluster.workers()) == WORKERS, limit=60):
        problems["workers up"] = running_cluster.workers()
    if problems:
        pytest.fail(f"the test left the cluster unclean: {problems}", pytrace=False)


@pytest.fixture
def address(cluster: Cluster) -> str:
    return cluster.address
