"""The outbox's sender: every result recorded as due goes to the destination, once, however long it is down.

A batch of due results goes over one association. While the destination cannot be reached the sender
waits, doubling the wait from `first_wait_s` up to `max_wait_s`, and says so once per outage (not once
per try: a night's outage is two lines, not thousands). A result the destination answers with a failure
status is tried again `max_refusals` times in all, then marked refused (`gateway --status` shows it):
sending the same bytes for ever would not change the answer. A result file that is missing or no longer
has the bytes recorded is refused at once: it is not what the run wrote.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from bcdeploy.errors import PacsError, PacsRefused
from bcdeploy.gateway.audit import SERIOUS_FAILURE, SUCCESS, AuditLog
from bcdeploy.gateway.destinations import Destination
from bcdeploy.gateway.spool import Result, Spool

log = logging.getLogger("bcdeploy.gateway")


class Sender:
    def __init__(self, spool: Spool, destination: Destination, audit: AuditLog, *, first_wait_s: float = 1.0,
                 max_wait_s: float = 30.0, max_refusals: int = 5, batch: int = 32) -> None:
        self.spool, self.destination, self.audit = spool, destination, audit
        self.first_wait_s, self.max_wait_s, self.max_refusals, self.batch = first_wait_s, max_wait_s, max_refusals, batch
        self.wake = threading.Event()  # set when results become due (the node calls it after each study)
        self._down_since: str | None = None

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` is set; a send in progress finishes first."""
        wait = self.first_wait_s
        while not stop.is_set():
            due = self.spool.due_results(self.batch)
            if not due:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                self._send(due, stop)
            except PacsError as err:
                if self._down_since is None:
                    self._down_since = str(err)
                    log.warning("cannot send results to %s (%s); retrying, waiting up to %.0f s between tries",
                                self.destination.describe(), err, self.max_wait_s)
                stop.wait(wait)
                wait = min(wait * 2, self.max_wait_s)
                continue
            if self._down_since is not None:
                log.warning("%s reachable again; sending the results held back", self.destination.describe())
                self._down_since = None
            wait = self.first_wait_s

    def _send(self, due: list[Result], stop: threading.Event) -> None:
        ready = [r for r in due if self._intact(r)]
        if not ready:
            return
        with self.destination.session([r.path for r in ready]) as send:
            for result in ready:
                if stop.is_set():
                    return
                try:
                    send(result.path)
                except PacsRefused as err:
                    give_up = result.attempts + 1 >= self.max_refusals
                    self.spool.mark_attempt(result, str(err), give_up=give_up)
                    log.warning("%s%s", err, " - given up" if give_up else "")
                    self._audit(result, SERIOUS_FAILURE, str(err))
                    continue
                self.spool.mark_sent(result)
                self._audit(result, SUCCESS, "sent")
                log.info("sent %s %s to %s", result.kind, result.sop_uid, self.destination.describe())

    def _intact(self, result: Result) -> bool:
        try:
            intact = hashlib.sha256(result.path.read_bytes()).hexdigest() == result.sha256
        except OSError:
            intact = False
        if not intact:
            why = f"{result.path}: missing or changed since the run wrote it; not sent"
            self.spool.mark_attempt(result, why, give_up=True)
            log.error("%s", why)
            self._audit(result, SERIOUS_FAILURE, why)
        return intact

    def _audit(self, result: Result, outcome: int, text: str) -> None:
        self.audit.record("instance", "R", outcome, text=text, destination={"ae": self.destination.describe()},
                          objects={"study_uid": result.study_uid, "kind": result.kind, "sop_uids": [result.sop_uid],
                                   "source_sop_uid": result.source_sop})
