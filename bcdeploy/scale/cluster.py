"""Joining Ray, and the one vocabulary for what each model replica asks of it.

`bcdeploy serve` (Ray Serve replicas) and `bcdeploy infer --ray` (Ray Data model actors) both run N
copies of the model, each reserving CPUs and GPUs: `Replicas` says that once, and the CLI spells it
once (`--replicas N|MIN:MAX`, `--cpus-per-replica`, `--gpus-per-replica`).

Local mode (`address="local"`) starts a private single-node Ray whose every service listens on
127.0.0.1 only: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` plus an explicit node address keep GCS, raylet,
object manager and agents on loopback (Ray on Linux otherwise binds them to all interfaces). Any
other address joins an existing cluster as a driver; what listens there is the cluster's business.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bcdeploy.errors import InputError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, kw_only=True)
class Replicas:
    """How many copies of the model run, (MIN, MAX) (equal: fixed; else autoscaled), and what each
    reserves from Ray (real resource requests: fractions of a GPU share it)."""

    count: tuple[int, int] = (1, 1)
    cpus: float = 1.0
    gpus: float = 0.0

    @property
    def autoscaled(self) -> bool:
        return self.count[0] != self.count[1]


def parse_count(text: str) -> tuple[int, int]:
    """`N` or `MIN:MAX` -> (min, max), 1 <= MIN <= MAX."""
    low, _, high = text.partition(":")
    if not (low.isdigit() and (high.isdigit() or not high) and 0 < int(low) <= int(high or low)):
        raise InputError(f"{text!r}: expected N or MIN:MAX with 1 <= MIN <= MAX, e.g. 2 or 1:4")
    return int(low), int(high or low)


DEFAULT_CONNECT_TIMEOUT_S = 15.0


def connect(address: str, object_store_bytes: int, purpose: str,
            timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Start a loopback-only local Ray, or join the cluster at `address` (reached within `timeout_s`)."""
    if address not in ("local", "auto"):
        check_reachable(address, timeout_s)
    if address == "local":
        # must be set before ray is imported: Ray reads it once, into a module constant
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from bcdeploy._imports import require

    ray = require("ray", purpose)
    if address == "local":
        ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False, log_to_driver=False,
                 object_store_memory=object_store_bytes, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


def check_reachable(address: str, timeout_s: float) -> None:
    """A cluster address where nothing listens is one error line within `timeout_s`: Ray's own client
    retries such an address for minutes, without a word and deaf to Ctrl-C."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"{address}: expected a Ray cluster address HOST:PORT (or ray://HOST:PORT), 'auto' or 'local'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        why = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise InputError(f"cannot reach a Ray cluster at {address} ({why} within {timeout_s:g} s); is it running? "
                         "(--connect-timeout sets the wait)") from None


def check_fits(replicas: Replicas, extra_cpus: float = 0.0) -> None:
    """On the private local Ray (this machine's CPUs), refuse what can never be scheduled instead of
    waiting forever for a replica that has no CPU to start on."""
    import ray

    wanted = replicas.count[0] * replicas.cpus + extra_cpus
    available = ray.cluster_resources().get("CPU", 0)
    if wanted > available:
        extra = f" plus {extra_cpus:g} CPU for reading and writing" if extra_cpus else ""
        raise InputError(f"--replicas {replicas.count[0]} x --cpus-per-replica {replicas.cpus:g}{extra} is "
                         f"{wanted:g} CPUs, but the local Ray has {available:g}; lower them or join a cluster")
