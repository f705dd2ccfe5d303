"""The node's counters for Prometheus (`gateway --http`: /metrics), through prometheus_client.

Two kinds, as Prometheus' client guidelines ask:
- Events are counted when they happen, beside the audit line that records them (scp.py, node.py): an
  instance received or refused (by reason), an association accepted or refused, a study run, an image
  segmented, a result sent or refused. These count since the process started; Prometheus' `rate()`
  and `increase()` handle the reset of a restart. The audit trail is the durable record of the same
  events: the test checks the two agree.
- States are read when scraped (`NodeState`): results due and the age of the oldest, spool bytes, free
  disk, associations open, the destination's reachability. Read at scrape time, they cannot drift
  from the state the node persists.

Names follow Prometheus' conventions: a `bcdeploy_gateway_` prefix, base units (seconds, bytes),
`_total` on counters, labels of small fixed sets (a refusal's reason, a result's kind), never a UID.
The list is in README.md (Operating the node).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PREFIX = "bcdeploy_gateway"
# one image's segmentation, read to written (seconds): a CPU takes seconds, a GPU tens of milliseconds
SEGMENTATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
STAGES_TIMED = ("read", "decode", "preprocess", "infer", "postprocess", "write")  # the ledger's *_ms columns


@dataclass(frozen=True)
class NodeState:
    """What /metrics and /readyz read when asked: callables onto the node's own state."""

    results: Callable[[], dict[str, Any]]  # Outbox.counts() plus `oldest_due` (epoch seconds or None)
    spool_bytes: Callable[[str], int]  # by state: waiting, failed
    folder: Path  # the node's --out: its file system's free space
    associations_open: Callable[[], int]
    destination_up: Callable[[], bool]
    last_contact: Callable[[], float | None]  # epoch seconds of the destination's last success


class NodeMetrics:
    """The node's registry: its event counters, and a collector of its state (NodeState)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(namespace="", registry=r)  # process_start_time_seconds, memory, CPU, open fds
        self.received = Counter(f"{PREFIX}_instances_received", "Instances answered success, by whether they are "
                                "segmented (a mammogram) or kept out (another SOP class or modality)",
                                ["segmented"], registry=r)
        self.refused = Counter(f"{PREFIX}_instances_refused", "Instances answered a failure status, by reason",
                               ["reason"], registry=r)
        self.quarantined = Counter(f"{PREFIX}_instances_quarantined", "Instances never tried again: their own runs "
                                   "stopped the node", registry=r)
        self.associations = Counter(f"{PREFIX}_associations_accepted", "Associations accepted", registry=r)
        self.associations_refused = Counter(f"{PREFIX}_associations_refused", "Associations or connections refused, "
                                            "by reason", ["reason"], registry=r)
        self.studies = Counter(f"{PREFIX}_studies_processed", "Runs over a study's waiting instances that ended",
                               registry=r)
        self.studies_failed = Counter(f"{PREFIX}_studies_failed", "Runs over a study that failed as a whole "
                                      "(tried again later: a full disk, an unwritable folder)", registry=r)
        self.images = Counter(f"{PREFIX}_images_segmented", "Images segmented", registry=r)
        self.images_failed = Counter(f"{PREFIX}_images_failed", "Images that failed (one failure line each)",
                                     registry=r)
        self.segmentation = Histogram(f"{PREFIX}_segmentation_seconds", "One image's segmentation, read to written",
                                      buckets=SEGMENTATION_BUCKETS, registry=r)
        self.sent = Counter(f"{PREFIX}_results_sent", "Results the destination stored, by kind", ["kind"], registry=r)
        self.send_refused = Counter(f"{PREFIX}_results_refused", "Results the destination answered with a failure "
                                    "(each try), or not sent because the file changed, by kind", ["kind"], registry=r)
        self.model = Info(f"{PREFIX}_model", "The model the node segments with", registry=r)

    def describe_model(self, described: dict[str, Any], version: str) -> None:
        self.model.info({"file": Path(str(described.get("model", ""))).name, "sha256": str(described.get("sha256", "")),
                         "backend": str(described.get("backend", "")), "precision": str(described.get("precision", "")),
                         "bcdeploy_version": version})

    def watch(self, state: NodeState) -> None:
        self.registry.register(_StateCollector(state))

    def image_settled(self, row: dict[str, Any]) -> None:
        """One settled row of a study's run (runtime.run's on_settled): segmented now, failed, or unchanged."""
        if row.get("status") == "ok":
            stages = [row.get(f"{stage}_ms") for stage in STAGES_TIMED]
            if stages[STAGES_TIMED.index("infer")] is not None:  # segmented in this run, not found unchanged
                self.images.inc()
                self.segmentation.observe(sum(ms for ms in stages if ms) / 1000.0)
        elif row.get("status") == "failed":
            self.images_failed.inc()

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector(Collector):
    def __init__(self, state: NodeState) -> None:
        self.state = state

    def describe(self) -> list:
        return []  # no fixed description: never called to collect at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.state
        results = s.results()
        yield GaugeMetricFamily(f"{PREFIX}_results_due", "Results waiting to be sent", value=results["due"])
        oldest = results.get("oldest_due")
        yield GaugeMetricFamily(f"{PREFIX}_results_oldest_due_age_seconds", "Age of the oldest result waiting to be "
                                "sent (0: none)", value=max(0.0, time.time() - oldest) if oldest else 0.0)
        spool = GaugeMetricFamily(f"{PREFIX}_spool_bytes", "Bytes of spooled instances, by state (the quota counts "
                                  "those waiting)", labels=["state"])
        for state in ("waiting", "failed"):
            spool.add_metric([state], s.spool_bytes(state))
        yield spool
        yield GaugeMetricFamily(f"{PREFIX}_disk_free_bytes", "Free bytes on the file system of the node's folder",
                                value=shutil.disk_usage(s.folder).free)
        yield GaugeMetricFamily(f"{PREFIX}_associations_open", "DICOM associations open now",
                                value=s.associations_open())
        yield GaugeMetricFamily(f"{PREFIX}_destination_up", "1 while the results' destination answers, 0 during an "
                                "outage", value=1.0 if s.destination_up() else 0.0)
        contact = s.last_contact()
        if contact is not None:
            yield GaugeMetricFamily(f"{PREFIX}_destination_last_success_timestamp_seconds", "When the destination "
                                    "last stored a result (Unix time)", value=contact)
