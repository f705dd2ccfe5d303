"""The node's life: receive on pynetdicom's threads, segment quiet studies on the main thread, send from
a sender thread; SIGTERM ends it cleanly, SIGKILL loses nothing.

- Segmenting: every half second the main thread asks the spool for studies with no new instance for
  `study_idle_s` and runs each through runtime.run (the same reader, model, writer, ledger and resume
  rule as `infer`, output folder DIR/results). The model is opened once, when the node starts: a model
  that does not open stops the node before it accepts anything.
- The run queues each image's DICOM results in the outbox (runtime/run/outbox.py, in the run ledger) in
  the transaction that commits its row, and hands each settled row back (RunOptions.on_settled); one
  spool transaction then marks each instance processed or failed. The node never reads back what the
  run just wrote: no ledger reopened, no result file parsed for its UID. A kill between the two
  re-runs the study, and the resume rule skips its finished images (spool.py).
- Sending: the outbox's sender (pacs/sender.py), the same one `infer --dicomweb` uses.
- A file that crashes the process natively (no exception to catch) is found by the runs that never
  returned: such a study is run one image at a time, and an image that crashed its own runs is
  quarantined (spool.py). A restart after a crash is never a crash loop.
- One node per folder: the node holds DIR/gateway.lock while it lives (a second node on the same --out
  stops with one line: two senders would send each result twice, two SCPs share one spool). Received
  mammograms are private: the node creates its files with no access for others (umask 027 at least).
- SIGTERM or Ctrl-C: the SCP stops accepting at once, the run in hand stops after the images in flight
  (runtime.run's Interrupts), the sender finishes the object it is sending; exit status 0. What was
  not finished waits in the spool and outbox for the next start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcdeploy.errors import BcDeployError, OutputError
from bcdeploy.fileio import exclusive_lock, tighten_umask
from bcdeploy.gateway.audit import MAJOR_FAILURE, SERIOUS_FAILURE, SUCCESS, AuditLog
from bcdeploy.gateway.http import HttpOptions
from bcdeploy.gateway.metrics import NodeMetrics, NodeState
from bcdeploy.gateway.scp import ScpOptions, StorageSCP
from bcdeploy.gateway.source import KEY_PREFIX, SpoolSource, source_key
from bcdeploy.gateway.spool import QUARANTINE_AFTER, Instance, Spool
from bcdeploy.gateway.status_page import StudyOutcome
from bcdeploy.pacs.destinations import Destination
from bcdeploy.pacs.sender import Sender
from bcdeploy.runtime.model.predictor import Predictor
from bcdeploy.runtime.results.outputs import dicom_kinds
from bcdeploy.runtime.run.ledger import open_outbox
from bcdeploy.runtime.run.outbox import Delivery

log = logging.getLogger("bcdeploy.gateway")

DEFAULT_SAVE = frozenset({"seg", "sr", "sc"})
POLL_S = 0.5
RETRY_STUDY_S = 30.0  # a study whose run failed as a whole (disk full) is tried again after this
LOCK_NAME = "gateway.lock"
PRIVATE_UMASK = 0o027  # received mammograms, results and state: owner and group only (module docstring)


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    out: Path
    scp: ScpOptions
    destination: Destination
    save: frozenset[str] = DEFAULT_SAVE
    cad_threshold: float | None = None  # the CAD SR's operating point (runtime/run/studies.py)
    study_idle_s: float = 10.0
    max_spool_bytes: int | None = None
    min_free_bytes: int = 0  # the disk's floor: instances are refused under it (--min-free-gb)
    audit_phi: bool = False
    http: HttpOptions | None = None  # /metrics, /healthz, /readyz and the status page (http.py)
    ready_window_s: float = 900.0  # /readyz: how long a result may wait while the destination stores nothing
    sender: dict[str, Any] = field(default_factory=dict)  # Sender's waits and limits (tests shorten them)


class Gateway:
    def __init__(self, open_predictor: Callable[[], Predictor], options: GatewayOptions) -> None:
        self.options = options
        self.stop = threading.Event()
        self.started = time.time()
        tighten_umask(PRIVATE_UMASK)
        try:
            options.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"{options.out}: cannot create the node's folder ({err.strerror or err})") from None
        self._lock = exclusive_lock(options.out / LOCK_NAME, f"{options.out}: another node runs with this --out "
                                    f"(it holds {LOCK_NAME}); stop it or choose another folder")
        self.spool = Spool(options.out, max_bytes=options.max_spool_bytes, min_free_bytes=options.min_free_bytes)
        self.audit = AuditLog(options.out, phi=options.audit_phi)
        self.metrics = NodeMetrics()
        self.predictor = open_predictor()
        self.model = self.predictor.describe()
        self.scp = StorageSCP(options.scp, self.spool, self.audit, self.metrics)
        self.outbox = open_outbox(self.spool.results)
        self.spool.move_results_to(self.outbox, source_key)  # a state that predates the one outbox (spool.py)
        self.sender = Sender(self.outbox, options.destination, report=self._audit_result,
                             on_reachability=self._audit_destination, **options.sender)
        self.destination_up = True  # until the sender finds it down
        self.last_contact: float | None = None  # when the destination last stored a result
        self.recent: deque[StudyOutcome] = deque(maxlen=50)  # the status page's recent studies
        self._in_run = False
        self._retry_after: dict[str, float] = {}
        self._watch()

    def _watch(self) -> None:
        from bcdeploy import __version__

        self.metrics.describe_model(self.model, __version__)
        self.metrics.watch(NodeState(results=self.outbox.counts, spool_bytes=self.spool.spooled_bytes,
                                     folder=self.spool.root, associations_open=lambda: self.scp.associations_open,
                                     destination_up=lambda: self.destination_up, last_contact=lambda: self.last_contact))

    def serve(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Run until SIGTERM or Ctrl-C (or `stop` is set)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        sender = threading.Thread(target=self.sender.run, args=(self.stop,), name="sender", daemon=True)
        http = None
        try:
            self.scp.start()
            if self.options.http is not None:
                from bcdeploy.gateway.monitor import start_monitor

                http = start_monitor(self, self.options.http)
            self.audit.record("application", "E", SUCCESS, text="node started",
                              destination={"ae": self.options.scp.ae_title, "address": f":{self.scp.port}"})
            sender.start()
            if on_ready:
                on_ready(self.scp.port)
            while not self.stop.is_set():
                for study in self.spool.studies_due(self.options.study_idle_s):
                    if self.stop.is_set():
                        break
                    if time.monotonic() >= self._retry_after.get(study, 0.0):
                        self._process(study)
                self.stop.wait(POLL_S)
        finally:
            self.stop.set()
            self.scp.stop()
            if http is not None:
                http.stop()
            self.sender.wake.set()
            if sender.is_alive():
                sender.join(timeout=60)
            self.audit.record("application", "E", SUCCESS, text="node stopped")
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.predictor.close()
        self.audit.close()
        self.outbox.close()
        self.spool.close()
        os.close(self._lock)

    def _audit_result(self, result: Delivery, sent: bool, text: str) -> None:
        if sent:
            self.last_contact = time.time()
        (self.metrics.sent if sent else self.metrics.send_refused).labels(result.kind).inc()
        self.audit.record("instance", "R", SUCCESS if sent else SERIOUS_FAILURE, text=text,
                          destination={"ae": self.options.destination.describe()},
                          objects={"study_uid": result.study_uid, "kind": result.kind, "sop_uids": [result.sop_uid],
                                   **({} if result.source.startswith("study:")  # a per-study result (the CAD SR)
                                      else {"source_sop_uid": result.source.removeprefix(KEY_PREFIX)})})

    def _audit_destination(self, up: bool, text: str) -> None:
        """An outage of the results' destination begins or ends: an Application Activity line; a peer
        refused at the TLS layer (an untrusted certificate) is a Security Alert."""
        self.destination_up = up
        event = "security" if "TLS" in text and not up else "application"
        self.audit.record(event, "E", SUCCESS if up else SERIOUS_FAILURE, text=f"destination: {text}",
                          destination={"ae": self.options.destination.describe()})

    def _on_signal(self, signum: int, frame: Any) -> None:
        first = not self.stop.is_set()
        self.stop.set()
        if first:
            log.warning("%s: no more associations accepted; finishing the image in hand",
                        signal.Signals(signum).name)
            threading.Thread(target=self.scp.stop, name="scp-stop", daemon=True).start()
        if self._in_run and signum == signal.SIGTERM:
            signal.raise_signal(signal.SIGINT)  # the run's own Ctrl-C handling stops it after the images in flight

    def _process(self, study: str) -> None:
        """Segment a study's waiting instances; after a run of them that never returned (a native crash),
        one at a time, and not at all for an instance whose own runs crashed the node (spool.py)."""
        instances = []
        for instance in self.spool.waiting(study):
            if instance.crashed_runs >= QUARANTINE_AFTER:
                self._quarantine(instance)
            else:
                instances.append(instance)
        if any(instance.crashed_runs for instance in instances):
            log.warning("study %s: a run of it did not end (the node crashed or was killed); segmenting its %d "
                        "image(s) one at a time", study, len(instances))
            batches = [[instance] for instance in instances]
        else:
            batches = [instances] if instances else []
        for batch in batches:
            if self.stop.is_set() or not self._run(study, batch):
                return

    def _quarantine(self, instance: Instance) -> None:
        error = (f"instance {instance.sop_uid}: the node stopped {instance.crashed_runs} times while segmenting it "
                 "alone (a decoder or model crash on this file?); not tried again, kept at "
                 f"{instance.path.relative_to(self.spool.root)}")
        self.spool.quarantine(instance, error)
        self.metrics.quarantined.inc()
        log.error("study %s: %s", instance.study_uid, error)
        self.audit.record("instance", "E", MAJOR_FAILURE, text=f"quarantined: {error}",
                          objects={"study_uid": instance.study_uid, "sop_uids": [instance.sop_uid]})

    def _run(self, study: str, instances: list[Instance]) -> bool:
        """One run over `instances`; False when it failed as a whole (tried again later)."""
        from bcdeploy.runtime.run import RunOptions, run

        settled: dict[str, dict] = {}

        def on_settled(row: dict) -> None:
            settled[row["source"]] = row
            self.metrics.image_settled(row)

        options = RunOptions(out=self.spool.results, save=self.options.save, max_pixels=self.options.scp.max_pixels,
                             modalities=frozenset({"MG"}), on_settled=on_settled,
                             deliver=dicom_kinds(self.options.save), cad_threshold=self.options.cad_threshold)
        started = time.perf_counter()
        log.info("study %s: segmenting %d image(s)", study, len(instances))
        self._in_run = True
        try:
            with self.spool.run_of(instances):
                summary = run(lambda _images: self.predictor, SpoolSource(study, instances), options)
        except BcDeployError as err:
            log.error("study %s: %s; trying again in %.0f s", study, err, RETRY_STUDY_S)
            self._retry_after[study] = time.monotonic() + RETRY_STUDY_S
            self.metrics.studies_failed.inc()
            self.recent.appendleft(StudyOutcome(study, instances[0].calling_ae, time.time(), 0, 0, len(instances),
                                                None, time.perf_counter() - started, "run failed; tried again"))
            return False
        finally:
            self._in_run = False
        self.spool.finish(instances, {key.removeprefix(KEY_PREFIX): row for key, row in settled.items()})
        for instance in instances:
            self.spool.release(instance)
        self.sender.wake.set()
        self.metrics.studies.inc()
        outcome = "interrupted" if summary.interrupted else "with failures" if summary.failed else "done"
        self.recent.appendleft(StudyOutcome(study, instances[0].calling_ae, time.time(), summary.processed,
                                            summary.skipped, len(summary.failed),
                                            summary.highest_case[1] if summary.highest_case else None,
                                            time.perf_counter() - started, outcome))
        score = f", highest case score {summary.highest_case[1]:.2f}" if summary.highest_case else ""
        log.info("study %s: %d image(s) segmented, %d unchanged, %d failed%s (%.1f s)%s", study,
                    summary.processed, summary.skipped, len(summary.failed), score, time.perf_counter() - started,
                    " - interrupted, the rest waits for the next start" if summary.interrupted else "")
        for failure in summary.failed:
            log.info("  %s", failure["error"])
        return True
