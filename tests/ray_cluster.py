"""Real Ray on loopback for tests: a multi-node cluster on 127.0.0.1, and socket checks.

Ray on Linux binds its nodes to the machine's interface address; `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`
(set in tests/conftest.py before anything imports ray: Ray reads it once) plus an explicit
`node_ip_address` keep every node on 127.0.0.1. Reuse `loopback_cluster` for any multi-node test
(`infer --ray` too); it stops everything it started, also when the test fails.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Iterator

LOOPBACK_ADDRESSES = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
NODE_ARGS = {"node_ip_address": "127.0.0.1", "include_dashboard": False, "object_store_memory": 100 * 2**20}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback_cluster(worker_cpus: tuple[float, ...] = (1,), head_cpus: float = 1) -> Iterator[tuple[object, list]]:
    """(cluster, worker nodes): a head and one worker node per entry, each with its CPUs, on 127.0.0.1.
    The test process is not connected as a driver: connect with `ray.init(cluster.address)` or pass
    `cluster.address` to a subprocess."""
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0", "tests/conftest.py sets it before ray loads"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={**NODE_ARGS, "num_cpus": head_cpus})
    try:
        workers = [add_loopback_node(cluster, cpus) for cpus in worker_cpus]
        yield cluster, workers
    finally:
        cluster.shutdown()


def add_loopback_node(cluster: object, cpus: float = 1) -> object:
    """Add (or, after a removal, bring back) a worker node on 127.0.0.1; returns its Ray node handle."""
    node = cluster.add_node(**NODE_ARGS, num_cpus=cpus)
    cluster.wait_for_nodes()
    return node


def listening_sockets(pid: int) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every listening TCP socket of `pid` and its descendants."""
    import ray  # noqa: F401 - puts Ray's bundled psutil (ray/thirdparty_files) on sys.path

    psutil = importlib.import_module("psutil")

    root = psutil.Process(pid)
    found = []
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((proc.pid, proc.name(), conn.laddr.ip, conn.laddr.port))
    return found
