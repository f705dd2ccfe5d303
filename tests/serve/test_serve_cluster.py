"""`bcdeploy serve --address` on a real two-node Ray cluster on 127.0.0.1 (head + worker, 1 CPU each):
two replicas, one per node, masks equal to the runtime's; the worker node removed under a bounded
load: every request answered (200, or 503 with one line), and the service answers 200 afterwards;
a new worker node gets a new replica although the model file is gone from disk by then (the model
reaches replicas through the object store)."""

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.ray_cluster import add_loopback_node, loopback_cluster
from tests.serve.helpers import decoded_mask, post, runtime_mask, start_server, stop_server
from tests.tiny_models import synthetic_png

pytestmark = [pytest.mark.slow]
ray = pytest.importorskip("ray", reason="needs the serve extra (ray[serve])")


@pytest.fixture(scope="module")
def cluster_server(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served_model")  # deleted by the last test
    model = shutil.copy(tiny_model, folder)
    shutil.copy(tiny_model.with_suffix(".bcdeploy.json"), folder)
    with loopback_cluster(worker_cpus=(1,), head_cpus=1) as (cluster, workers):
        proc, url = start_server(model, "--address", cluster.address, "--replicas", "2",
                                 "--cpus-per-replica", "1", "--max-batch", "2", loopback_env=True)
        try:
            yield cluster, workers[0], url, folder
        finally:
            stop_server(proc)


def test_two_replicas_on_two_nodes_give_the_runtime_masks(cluster_server, tiny_model):
    """Rounds of 8 concurrent requests (at most 5) until both nodes' replicas have answered."""
    url = cluster_server[2]
    payloads = [synthetic_png(seed, height=1200, width=1000) for seed in range(2)]
    expected = [runtime_mask(tiny_model, data) for data in payloads]
    nodes: set[str] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            replies = list(pool.map(lambda k: (k % 2, *post(url, payloads[k % 2])), range(8)))
            for k, status, reply in replies:
                assert status == 200 and np.array_equal(decoded_mask(reply), expected[k])
                nodes.add(reply["node"])
            if len(nodes) == 2:
                break
    assert len(nodes) == 2, "both nodes' replicas must have answered"


def test_worker_node_lost_under_load(cluster_server):
    """8 clients x 4 requests; the worker node is killed once its replica has answered (so requests
    are in flight on it); nothing may go unanswered, and the head's replica serves on."""
    cluster, worker, url, _ = cluster_server
    payload = synthetic_png(3, height=1200, width=1000)
    answered: list[tuple[int, dict]] = []
    worker_busy = threading.Event()

    def client(_: int) -> None:
        for _ in range(4):
            answered.append(post(url, payload, timeout=90))
            if answered[-1][1].get("node") == worker.node_id:
                worker_busy.set()

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, k) for k in range(8)]
        assert worker_busy.wait(120), "the worker's replica never answered"
        cluster.remove_node(worker, allow_graceful=False)
        for future in futures:
            future.result(timeout=300)
    assert len(answered) == 32, "every request gets a response"
    statuses = {status for status, _ in answered}
    assert statuses <= {200, 503}, statuses
    for status, reply in answered:
        if status == 503:
            assert reply["error"] and "\n" not in reply["error"]
    after = [post(url, payload, timeout=90) for _ in range(3)]
    assert [status for status, _ in after] == [200] * 3
    assert {reply["node"] for _, reply in after} != {worker.node_id}  # the head's replica carries on


def test_a_new_node_gets_a_replica_from_the_object_store(cluster_server):
    """Runs after the node loss: the model folder is deleted, a fresh worker node joins, and Serve's
    replacement replica on it opens the model from the object store (bounded wait: 120 s)."""
    cluster, _, url, folder = cluster_server
    shutil.rmtree(folder)
    new_node = add_loopback_node(cluster, cpus=1)
    payload = synthetic_png(4, height=1200, width=1000)
    deadline = time.time() + 120
    nodes: set[str] = set()
    with ThreadPoolExecutor(8) as pool:
        while new_node.node_id not in nodes and time.time() < deadline:
            replies = list(pool.map(lambda _: post(url, payload, timeout=90), range(8)))
            assert [status for status, _ in replies] == [200] * 8
            nodes |= {reply["node"] for _, reply in replies}
            time.sleep(0.5)
    assert new_node.node_id in nodes, "no replica started on the new node"
