"""Finding the Dask cluster: one ``distributed.Client`` per scheduler address, and this machine's address.

A new Client costs a connection and a handshake with the scheduler (tens of
milliseconds), so the clients made from an address are kept for the life of
the process. Dask is imported here, inside the functions, never at import.
"""

from __future__ import annotations

import threading

from ..errors import ProcessError, ProcessStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from distributed import Client

__all__ = ["SchedulerUnreachableError", "get_client", "reachable_host"]

_clients: dict[str, Client] = {}
_clients_lock = threading.Lock()


class SchedulerUnreachableError(ProcessError, ConnectionError):
    """The Dask scheduler could not be reached; nothing was started."""


def get_client(cluster: str | Any = None, timeout: float = 5.0) -> Client:
    """The ``distributed.Client`` for ``cluster``: a scheduler address, a Client, or a cluster object.

    Clients made from an address are kept, one per address, so that every
    start does not pay for a new connection (close one with ``.close()``; the
    next call makes a new one); ``None`` means Dask's default client.

    Raises:
        SchedulerUnreachableError: no scheduler answered at the address within ``timeout`` seconds.
        ValueError: ``cluster`` is None and there is no default client.
        ProcessStateError: the given Client is closed.
        TypeError: ``cluster`` is of another type.
    """
    import distributed

    if isinstance(cluster, distributed.Client):
        if cluster.status in ("closing", "closed"):
            raise ProcessStateError("the distributed.Client given as cluster= is closed; pass an open one")
        return cluster
    if cluster is None:
        try:
            return distributed.default_client()
        except ValueError:
            raise ValueError(
                "no Dask cluster given: pass cluster='tcp://host:8786' (a scheduler address) "
                "or a distributed.Client, or create a distributed.Client first"
            ) from None
    address = getattr(cluster, "scheduler_address", cluster)  # LocalCluster and friends
    if not isinstance(address, str):
        raise TypeError(
            "cluster must be a scheduler address such as 'tcp://10.0.0.5:8786', a distributed.Client "
            f"or a Dask cluster object, not {type(cluster).__name__}"
        )
    with _clients_lock:
        stale = _clients.get(address)
        if stale is not None and stale.status == "running":
            return stale
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise SchedulerUnreachableError(
                f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({error}); "
                "check the address and that the scheduler runs, or pass a longer connect_timeout"
            ) from None
        _clients[address] = client
    if stale is not None:
        stale.close()  # it lost its scheduler: stop its reconnection attempts
    return client


def reachable_host(client: Client) -> str:
    """The address of this machine on its route to the scheduler: workers usually share that network."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.utils import get_ip

    scheme, location = parse_address(client.scheduler.address)
    if scheme == "inproc":
        return "127.0.0.1"
    host, _ = parse_host_port(location)
    return get_ip(host)
