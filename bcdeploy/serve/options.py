"""What `bcdeploy serve` is asked for, as data: read by the launcher and by the application it deploys
(kept apart from both so neither imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bcdeploy.runtime.model.backends import BackendOptions
from bcdeploy.runtime.images.imageio import DEFAULT_MAX_PIXELS
from bcdeploy.scale.cluster import DEFAULT_CONNECT_TIMEOUT_S, LOOPBACK, Replicas


@dataclass(frozen=True, kw_only=True)
class ReplicaOptions:
    """How each segmenter replica runs and what it accepts."""

    backend: BackendOptions | None = None  # from the registry, checked against the model before Ray starts
    max_batch: int = 8
    batch_wait_s: float = 0.005
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """Everything `bcdeploy serve` needs besides the model (see cli/serve_cmds.py for the flags)."""

    address: str = "local"  # local | auto | ray://host:port | host:port (GCS of a running cluster)
    host: str = LOOPBACK
    port: int = 8000
    max_body_bytes: int = 128 * 2**20
    replica: ReplicaOptions = field(default_factory=ReplicaOptions)
    replicas: Replicas = field(default_factory=Replicas)
    drain_s: float = 30.0  # graceful shutdown: how long a replica may finish its requests
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S  # a cluster address where nothing listens: an error
