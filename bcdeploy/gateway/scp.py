"""The node's DICOM Storage SCP (pynetdicom): who may send, what is kept, and what each peer is told.

- Associations: the called AE title must be the node's; the calling AE title must be in `--allow` (when
  given); at most `max_associations` at once (pynetdicom rejects the next one as "local limit
  exceeded", a transient rejection the sender retries). Each accepted or refused association is one
  audit line, with the reason for a refusal.
- C-ECHO is answered. C-STORE of a class in sop_classes.ACCEPTED_ONLY is answered success and logged,
  not kept. A class in SEGMENTED is checked with the reader's own header checks (runtime/images/dicom.py:
  parseable, pixel data present and as long as the header says, within the pixel budget, a mammogram),
  then spooled and recorded (spool.py) before success is answered.
- Refusals: a dataset that cannot be parsed or whose UIDs are no UIDs, 0xC000 (cannot understand); over
  the pixel budget, pixel data shorter than its header says (truncated), or not a mammogram, 0xA900
  (does not match the SOP class as we process it); other bytes under a SOP Instance UID held already,
  0x0111 (duplicate SOP instance; the first copy is kept); the spool full, 0xA700 (out of resources). Each is one log line and one audit
  line, and the association goes on: the next instance is judged on its own. The spool full or the
  disk under its floor (--min-free-gb) are 0xA700 too.
- Each of these events is counted for /metrics (metrics.py) beside its audit line.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bcdeploy._imports import require
from bcdeploy.errors import BcDeployError, InputError
from bcdeploy.gateway import sop_classes
from bcdeploy.gateway.audit import MAJOR_FAILURE, MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, AuditLog
from bcdeploy.gateway.metrics import NodeMetrics
from bcdeploy.gateway.spool import Collision, Instance, Spool, check_uid
from bcdeploy.runtime.images.decoder_guard import decoding, is_interrupt

log = logging.getLogger("bcdeploy.gateway")

SUCCESS_STATUS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_INSTANCE = 0x0111  # PS3.7 C.4: a SOP Instance UID already held, with other content


class Refused(BcDeployError):
    """A C-STORE answered with a failure `status`; `reason` names it in the metrics and the audit line."""

    def __init__(self, status: int, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


@dataclass(frozen=True, kw_only=True)
class ScpOptions:
    ae_title: str = "BCDEPLOY"
    host: str = "0.0.0.0"
    port: int = 11112
    allow: frozenset[str] = frozenset()  # calling AE titles accepted; empty: any
    max_associations: int = 8
    max_pixels: int
    ssl_context: ssl.SSLContext | None = None


class StorageSCP:
    def __init__(self, options: ScpOptions, spool: Spool, audit: AuditLog, metrics: NodeMetrics,
                 on_received: Callable[[Instance], None] = lambda instance: None) -> None:
        self.options, self.spool, self.audit, self.metrics, self.on_received = options, spool, audit, metrics, on_received
        self._server: Any = None
        self._stopping = threading.Lock()

    def start(self) -> None:
        pynetdicom = require("pynetdicom", "The DICOM node")
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

        ae = AE(ae_title=self.options.ae_title)
        ae.require_called_aet = True
        ae.require_calling_aet = sorted(self.options.allow)
        ae.maximum_associations = self.options.max_associations
        for uid in [sop_classes.VERIFICATION, *sop_classes.ACCEPTED]:
            ae.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_C_ECHO, lambda event: SUCCESS_STATUS),
                    (evt.EVT_ACCEPTED, self._accepted), (evt.EVT_REJECTED, self._rejected)]
        from bcdeploy.gateway.listener import start_guarded_server

        try:
            self._server = start_guarded_server(ae, (self.options.host, self.options.port), handlers=handlers,
                                                ssl_context=self.options.ssl_context, on_refused=self._refused_peer)
        except OSError as err:
            raise BcDeployError(f"cannot listen on {self.options.host}:{self.options.port} ({err.strerror or err}); "
                                "is another node running there?") from None
        log.debug("pynetdicom %s listening", pynetdicom.__version__)

    @property
    def associations_open(self) -> int:
        server = self._server
        return len(server.active_associations) if server is not None else 0

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else self.options.port

    def stop(self) -> None:
        """Stop accepting; associations in progress are ended (their senders retry what was not confirmed)."""
        with self._stopping:  # the signal's thread and the node's own shutdown may both ask
            server, self._server = self._server, None
            if server is not None:
                server.shutdown()

    # --- association events ---------------------------------------------------------------------------
    def _accepted(self, event: Any) -> None:
        self.metrics.associations.inc()
        self.audit.record("association", "E", SUCCESS, text="association accepted", source=_peer(event),
                          destination={"ae": self.options.ae_title})

    def _rejected(self, event: Any) -> None:
        peer = _peer(event)
        called = str(getattr(event.assoc.requestor.primitive, "called_ae_title", "") or "").strip()
        if self.options.allow and peer["ae"] not in self.options.allow:
            reason, why = "calling_ae", f"calling AE title {peer['ae']!r} is not in --allow"
        elif called != self.options.ae_title:
            reason, why = "called_ae", f"called AE title {called!r} is not this node's ({self.options.ae_title})"
        else:
            reason, why = "limit", f"more than {self.options.max_associations} associations at once"
        self.metrics.associations_refused.labels(reason).inc()
        log.warning("association from %s at %s refused: %s", peer["ae"], peer["address"], why)
        self.audit.record("security", "E", SERIOUS_FAILURE, text=f"association refused: {why}", source=peer,
                          destination={"ae": called or self.options.ae_title})

    def _refused_peer(self, address: str, why: str) -> None:
        """A connection that never became an association (the TLS handshake failed or timed out)."""
        log.warning("connection from %s refused: %s", address, why)
        self.metrics.associations_refused.labels("tls").inc()
        self.audit.record("security", "E", SERIOUS_FAILURE, text=f"connection refused: {why}",
                          source={"ae": "", "address": address}, destination={"ae": self.options.ae_title})

    # --- C-STORE --------------------------------------------------------------------------------------
    def _store(self, event: Any) -> int:
        peer = _peer(event)
        sop_class = str(event.request.AffectedSOPClassUID)
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        objects: dict[str, Any] = {"sop_class": sop_class, "sop_uids": [sop_uid]}
        if sop_class not in sop_classes.SEGMENTED:
            log.info("%s from %s: %s accepted, not segmented", sop_uid, peer["ae"], sop_classes.name(sop_class))
            self.metrics.received.labels("false").inc()
            self.audit.record("instance", "C", SUCCESS, text="accepted, not segmented (SOP class)", source=peer,
                              objects=objects)
            return SUCCESS_STATUS
        try:
            data = event.encoded_dataset(include_meta=True)
            ds = self._check(data, sop_class, sop_uid)
            if ds is None:  # an image class, but not a mammogram by its Modality (sop_classes.KEPT_ONLY_IF_MG)
                log.info("%s from %s: %s of another modality than MG accepted, not segmented", sop_uid, peer["ae"],
                         sop_classes.name(sop_class))
                self.metrics.received.labels("false").inc()
                self.audit.record("instance", "C", SUCCESS, text="accepted, not segmented (modality)", source=peer,
                                  objects=objects)
                return SUCCESS_STATUS
            objects["study_uid"] = str(ds.StudyInstanceUID)
            if full := self.spool.no_room(len(data)):
                raise Refused(OUT_OF_RESOURCES, full[1], reason=full[0])
            try:
                instance = self.spool.receive(data, study_uid=str(ds.StudyInstanceUID),
                                              series_uid=str(ds.SeriesInstanceUID), sop_uid=sop_uid,
                                              sop_class=sop_class, calling_ae=peer["ae"])
            except Collision as err:
                raise Refused(DUPLICATE_INSTANCE, str(err), reason="duplicate") from None
        except Refused as err:
            log.warning("%s from %s refused (0x%04X): %s", sop_uid, peer["ae"], err.status, err)
            outcome = MINOR_FAILURE if err.status == OUT_OF_RESOURCES else SERIOUS_FAILURE
            self.metrics.refused.labels(err.reason).inc()
            self.audit.record("instance", "C", outcome, text=str(err), source=peer, objects=objects)
            return err.status
        except BaseException as err:  # a failure status for this instance, never a dropped association
            if is_interrupt(err):
                raise
            log.error("%s from %s not stored: %s", sop_uid, peer["ae"], err)
            self.metrics.refused.labels("not_stored").inc()
            self.audit.record("instance", "C", MAJOR_FAILURE, text=f"not stored: {err}", source=peer, objects=objects)
            return OUT_OF_RESOURCES
        log.info("%s from %s stored (study %s)", sop_uid, peer["ae"], instance.study_uid)
        self.metrics.received.labels("true").inc()
        self.audit.record("instance", "C", SUCCESS, text="stored", source=peer, objects=objects,
                          patient=_patient(ds))
        self.on_received(instance)
        return SUCCESS_STATUS

    def _check(self, data: bytes, sop_class: str, sop_uid: str) -> Any:
        """The reader's header checks, on receipt: what would fail later is refused now, while the sender
        is still there to be told. None: a class segmented only with Modality MG, of another modality."""
        from bcdeploy.runtime.images.dicom import check_header, read_dataset

        origin = f"instance {sop_uid}"
        try:
            with decoding(origin, "the DICOM header"):
                ds = read_dataset(data, origin, max_pixels=self.options.max_pixels)
                for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                    check_uid(ds.get(keyword), f"{origin}: {keyword}")
        except InputError as err:
            raise Refused(CANNOT_UNDERSTAND, str(err), reason="cannot_understand") from None
        if str(ds.SOPInstanceUID) != sop_uid or str(ds.get("SOPClassUID", "")) != sop_class:
            raise Refused(CANNOT_UNDERSTAND, f"{origin}: the dataset's SOP class or instance UID differs from the "
                                             "C-STORE request's", reason="cannot_understand")
        modality = str(ds.get("Modality", "")).strip().upper()
        if sop_class in sop_classes.KEPT_ONLY_IF_MG and modality != "MG":
            return None
        try:
            if sop_class in sop_classes.NEEDS_MG_MODALITY and modality != "MG":
                raise InputError(f"{origin}: {sop_classes.name(sop_class)} of modality {modality or 'none'}, "
                                 "not a mammogram (MG)")
            with decoding(origin, "the DICOM header"):
                check_header(ds, origin, max_pixels=self.options.max_pixels, frame=None, modalities=frozenset({"MG"}))
        except InputError as err:
            raise Refused(DOES_NOT_MATCH, str(err), reason="does_not_match") from None
        return ds


def _peer(event: Any) -> dict[str, Any]:
    requestor = event.assoc.requestor
    return {"ae": str(requestor.ae_title or "").strip(), "address": f"{requestor.address}:{requestor.port}"}


def _patient(ds: Any) -> dict[str, str]:
    return {"id": str(ds.get("PatientID", "") or ""), "name": str(ds.get("PatientName", "") or "")}


def server_context(cert: str, key: str, ca: str | None) -> ssl.SSLContext:
    """DICOM over TLS (PS3.15 B.9, the BCP 195 profile's TLS 1.2+): the node's certificate; with `ca`, every
    peer must present a certificate signed by it (mutual TLS, what hospital networks ask for)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if ca:
            context.load_verify_locations(ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as err:
        raise InputError(f"TLS: cannot load the certificate, key or CA ({err})") from None
    return context
