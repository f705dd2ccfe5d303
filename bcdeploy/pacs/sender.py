"""The outbox's sender: every result a run queued (runtime/run/outbox.py) goes to the destination, once,
however long it is down. One sender for every delivery: the DICOM node runs it on a thread for as long
as it lives (`run`), `infer --dicomweb`/`--stow` once after its run (`drain`).

A batch of due results goes over one association. Each file is read once: its bytes are checked against
the hash the run recorded (a file that is missing or changed is refused at once: it is not what the run
wrote) and the dataset parsed from those bytes is what is sent. While the destination cannot be reached
the node's sender waits, doubling the wait from `first_wait_s` up to `max_wait_s`, and says so once per
outage (a night's outage is two lines, not thousands); `drain` stops at the first such error and leaves
the rest due for the next time. A result the destination answers with a failure status is tried again
`max_refusals` times in all, then marked refused: sending the same bytes for ever would not change the
answer (`gateway --resend DIR` makes refused results due again once the cause is fixed). A PACS that
answers "out of resources" (0xA7xx) or HTTP 503/429 is full or busy, not refusing: the destination
raises PacsError and the sender waits as for an outage.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.errors import PacsError, PacsRefused
from bcdeploy.pacs.destinations import Destination
from bcdeploy.runtime.run.outbox import Delivery, Outbox

log = logging.getLogger("bcdeploy.outbox")

# what a caller wants to hear of each result: (result, sent?, the line that says why not)
Report = Callable[[Delivery, bool, str], None]


@dataclass(frozen=True)
class Drained:
    """What one `drain` did, for the command's last lines and exit status."""
    sent: int
    due: int  # left due: the destination could not be reached (error says why)
    refused: int  # refused for good, this time
    error: str | None = None


class Sender:
    def __init__(self, outbox: Outbox, destination: Destination, *, report: Report | None = None,
                 on_reachability: Callable[[bool, str], None] | None = None,
                 first_wait_s: float = 1.0, max_wait_s: float = 30.0, max_refusals: int = 5, batch: int = 32) -> None:
        """`report(result, sent, text)` after each result; `on_reachability(up, text)` when the destination
        stops answering (once per outage, with why) and when it answers again (the node audits both)."""
        self.outbox, self.destination, self.report = outbox, destination, report
        self.on_reachability = on_reachability
        self.first_wait_s, self.max_wait_s, self.max_refusals, self.batch = first_wait_s, max_wait_s, max_refusals, batch
        self.wake = threading.Event()  # set when results become due (the node sets it after each study)
        self._down_since: str | None = None
        self._counts = {"sent": 0, "refused": 0}

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` is set; a send in progress finishes first."""
        wait = self.first_wait_s
        while not stop.is_set():
            due = self.outbox.due(self.batch)
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
                    if self.on_reachability is not None:
                        self.on_reachability(False, str(err))
                stop.wait(wait)
                wait = min(wait * 2, self.max_wait_s)
                continue
            if self._down_since is not None:
                log.warning("%s reachable again; sending the results held back", self.destination.describe())
                self._down_since = None
                if self.on_reachability is not None:
                    self.on_reachability(True, "reachable again")
            wait = self.first_wait_s

    def drain(self, stop: threading.Event | None = None) -> Drained:
        """Send what is due now, batch after batch, until nothing is due or the destination cannot be
        reached (what is left stays due for the next run of the same command)."""
        stop = stop or threading.Event()
        self._counts = {"sent": 0, "refused": 0}
        error = None
        while not stop.is_set():
            due = self.outbox.due(self.batch)
            if not due:
                break
            try:
                self._send(due, stop)
            except PacsError as err:
                error = str(err)
                break
        left = self.outbox.counts()["due"]
        return Drained(sent=self._counts["sent"], due=left, refused=self._counts["refused"], error=error)

    def _send(self, due: list[Delivery], stop: threading.Event) -> None:
        ready = [(result, dataset) for result in due if (dataset := self._read(result)) is not None]
        if not ready:
            return
        with self.destination.session([dataset for _, dataset in ready]) as send:
            for result, dataset in ready:
                if stop.is_set():
                    return
                try:
                    send(dataset)
                except PacsRefused as err:
                    give_up = result.attempts + 1 >= self.max_refusals
                    self.outbox.mark_attempt(result, str(err), give_up=give_up)
                    log.warning("%s%s", err, " - given up" if give_up else "")
                    self._counts["refused"] += give_up
                    self._tell(result, False, str(err))
                    continue
                self.outbox.mark_sent(result)
                self._counts["sent"] += 1
                self._tell(result, True, "sent")
                log.info("sent %s %s to %s", result.kind, result.sop_uid, self.destination.describe())

    def _read(self, result: Delivery) -> Any | None:
        """The result's dataset, parsed from the one read of its file, when those are the bytes the run
        wrote; else None (refused for good, said)."""
        import pydicom

        try:
            data = result.path.read_bytes()
            intact = hashlib.sha256(data).hexdigest() == result.sha256
        except OSError:
            data, intact = b"", False
        if intact:
            return pydicom.dcmread(io.BytesIO(data))
        why = f"{result.path}: missing or changed since the run wrote it; not sent"
        self.outbox.mark_attempt(result, why, give_up=True)
        self._counts["refused"] += 1
        log.error("%s", why)
        self._tell(result, False, why)
        return None

    def _tell(self, result: Delivery, sent: bool, text: str) -> None:
        if self.report is not None:
            self.report(result, sent, text)


def send_due(out: Path, destination: Destination) -> Drained:
    """Drain the outbox of the output folder `out` into `destination` once (`infer --dicomweb`/`--stow`)."""
    from bcdeploy.runtime.run.ledger import open_outbox

    outbox = open_outbox(out)
    try:
        return Sender(outbox, destination).drain()
    finally:
        outbox.close()
