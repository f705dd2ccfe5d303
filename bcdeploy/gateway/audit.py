"""DIR/audit.jsonl: one JSON line per association, received instance and sent result.

Shaped after the DICOM audit message schema IHE ATNA uses (PS3.15 A.5): each line has the event's
code (`event_id`: DCM 110100 Application Activity, 110102 Begin Transferring DICOM Instances, 110104
DICOM Instances Transferred, 110113 Security Alert), the action (C create: received; R read: sent;
E execute), the outcome (0 success, 4 minor failure, 8 serious failure, 12 major failure), the two
parties (AE title, network address) and the objects (study, SOP class, SOP instance UIDs). A hospital's
audit repository maps these fields one to one onto its RFC 3881 / ATNA records.

No pixel data, and no patient name or ID unless the node runs with --audit-phi: the audit trail is read
by people who may not see patient data. Each line is written whole and flushed to disk before the
event's answer goes out, so the trail never lacks an event the peer saw succeed. The file is opened for
each line, so logrotate (or an auditor's collector) may move it at any time.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

AUDIT_NAME = "audit.jsonl"

EVENTS = {
    "application": ("110100", "Application Activity"),
    "association": ("110102", "Begin Transferring DICOM Instances"),
    "instance": ("110104", "DICOM Instances Transferred"),
    "security": ("110113", "Security Alert"),
}
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = 0, 4, 8, 12


class AuditLog:
    def __init__(self, root: Path, *, phi: bool = False) -> None:
        self.path = Path(root) / AUDIT_NAME
        self.phi = phi
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, action: str, outcome: int, *, text: str | None = None,
               source: dict[str, Any] | None = None, destination: dict[str, Any] | None = None,
               objects: dict[str, Any] | None = None, patient: dict[str, str] | None = None) -> None:
        code, meaning = EVENTS[event]
        line: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "event": event, "event_id": {"code": code, "system": "DCM", "meaning": meaning},
            "action": action, "outcome": outcome}
        if text:
            line["outcome_text"] = text
        for key, value in (("source", source), ("destination", destination), ("objects", objects)):
            if value:
                line[key] = {k: v for k, v in value.items() if v not in (None, "")}
        if patient and self.phi:
            line["patient"] = patient
        data = (json.dumps(line, sort_keys=True) + "\n").encode()
        with self._lock:  # opened per line: logrotate may move the file between two events
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)  # O_APPEND: one write, one whole line, even beside another writer
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Nothing is held open between lines (see record)."""


def read_audit(root: Path) -> list[dict[str, Any]]:
    path = Path(root) / AUDIT_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recent_failures(root: Path, limit: int = 20, tail_bytes: int = 256 * 1024) -> list[dict[str, Any]]:
    """The last `limit` events that did not succeed (refusals, security alerts, failed sends), newest
    first, from the end of the trail only: a node's trail of months is never read whole for a page."""
    path = Path(root) / AUDIT_NAME
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().splitlines()[1 if size > tail_bytes else 0:]  # the first may be a part line
    except FileNotFoundError:
        return []
    failures = []
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("outcome"):
            failures.append(event)
            if len(failures) >= limit:
                break
    return failures
