"""/readyz: can the node take a study now and see its results through? Each check says why not.

A load balancer or a monitoring system polls it: 200 while every check passes, 503 with the failing
checks otherwise. The checks are what a radiographer would find out too late:
- model: the model is open (the node opens it before it listens; a model that does not open stops it);
- spool: the spool folder takes a write (a probe file written, synced and removed: a read-only or full
  file system fails here, not on the next C-STORE);
- disk: free space above --min-free-gb, under which the SCP refuses instances (0xA700);
- destination: no result has waited longer than the window, or the destination stored one within it
  (a PACS down for longer than the window makes the node not ready; a PACS down while nothing is due
  does not).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_BYTES = 4096


@dataclass(frozen=True)
class Readiness:
    """What the checks read."""

    model: Callable[[], dict[str, Any] | None]  # the open model's description, None before it is open
    spool: Path
    free_bytes: Callable[[], int]
    min_free_bytes: int
    results: Callable[[], dict[str, Any]]  # the outbox's counts (due, oldest_due)
    last_contact: Callable[[], float | None]
    window_s: float

    def checks(self) -> dict[str, dict[str, Any]]:
        return {"model": self._model(), "spool": self._spool(), "disk": self._disk(), "destination": self._destination()}

    def _model(self) -> dict[str, Any]:
        described = self.model()
        if described is None:
            return {"ok": False, "detail": "the model is not open"}
        return {"ok": True, "detail": f"{Path(str(described.get('model', ''))).name} "
                                      f"(sha256 {str(described.get('sha256', ''))[:12]})"}

    def _spool(self) -> dict[str, Any]:
        probe = self.spool / f".ready-{uuid.uuid4().hex}"
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            return {"ok": False, "detail": f"{self.spool} takes no write ({err.strerror or err})"}
        finally:
            probe.unlink(missing_ok=True)
        return {"ok": True, "detail": "writable"}

    def _disk(self) -> dict[str, Any]:
        free = self.free_bytes()
        ok = free >= self.min_free_bytes
        return {"ok": ok, "free_bytes": free, "min_free_bytes": self.min_free_bytes,
                "detail": "above the floor" if ok else "under --min-free-gb: instances are refused (0xA700)"}

    def _destination(self) -> dict[str, Any]:
        results = self.results()
        now = time.time()
        oldest, contact = results.get("oldest_due"), self.last_contact()
        waited = now - oldest if oldest else 0.0
        if not results["due"] or waited <= self.window_s:
            return {"ok": True, "due": results["due"], "detail": "nothing due for longer than the window"}
        if contact is not None and now - contact <= self.window_s:
            return {"ok": True, "due": results["due"], "detail": "results due; the destination stored one recently"}
        return {"ok": False, "due": results["due"], "oldest_due_age_s": round(waited),
                "detail": f"a result has waited {waited / 60:.0f} min and the destination stored none in the last "
                          f"{self.window_s / 60:.0f} min ({results.get('last_error') or 'no answer'})"}
