"""The node's status page (`gateway --http`, /): what an IT team on call looks at first.

Server-rendered HTML with a refresh header: no build step, no JavaScript, the page works with scripts
off and under the server's `default-src 'none'` policy. Everything shown passes through html.escape:
AE titles, UIDs, error lines and file names come from the network or from files a peer sent.

No patient name or ID is ever shown: the HTTP side has no login, and the page shows what it needs by
study UID (--audit-phi governs the audit trail, a file on the node, not this page).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

REFRESH_S = 10


@dataclass(frozen=True)
class StudyOutcome:
    """One run over a study's waiting instances, for the page's recent studies."""

    study_uid: str
    calling_ae: str
    finished: float  # epoch seconds
    segmented: int
    unchanged: int
    failed: int
    case_score: float | None
    seconds: float
    outcome: str  # done, with failures, interrupted, run failed


@dataclass(frozen=True)
class Snapshot:
    ae_title: str
    started: float
    model: dict[str, Any]
    queue: dict[str, Any]  # spool.status(outbox counts)
    destination: str
    destination_up: bool
    last_contact: float | None
    ready: dict[str, dict[str, Any]]
    studies: list[StudyOutcome] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # audit events, newest first


def render(s: Snapshot) -> str:
    now = time.time()
    ready = all(check["ok"] for check in s.ready.values())
    queue = s.queue
    parts = [
        "<!doctype html>",
        f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_S}">',
        f"<title>{_e(s.ae_title)} - bcdeploy gateway</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(s.ae_title)} <span class=\"{'ok' if ready else 'bad'}\">{'ready' if ready else 'not ready'}</span></h1>",
        f"<p>bcdeploy gateway, up {_age(now - s.started)}; model {_e(s.model.get('file', ''))} "
        f"(sha256 {_e(str(s.model.get('sha256', ''))[:12])}, {_e(s.model.get('backend', ''))}). "
        f"This page refreshes every {REFRESH_S} s.</p>",
        "<h2>Readiness</h2>",
        _table(("check", "state", "detail"),
               ((name, "ok" if check["ok"] else "FAILED", check.get("detail", "")) for name, check in s.ready.items())),
        "<h2>Queue</h2>",
        _table(("received", "waiting", "processed", "failed", "spool waiting", "failed kept"),
               [(queue["received"], queue["waiting"], queue["processed"], queue["failed"],
                 f"{queue['spool_bytes'] / 1e6:.1f} MB", f"{queue['failed_bytes'] / 1e6:.1f} MB")]),
        "<h2>Results by destination</h2>",
        _table(("destination", "state", "due", "oldest due", "sent", "refused", "last stored", "last error"),
               [(s.destination, "up" if s.destination_up else "DOWN", queue["results_due"],
                 _age(now - queue["oldest_due"]) if queue.get("oldest_due") else "-", queue["sent"], queue["refused"],
                 f"{_age(now - s.last_contact)} ago" if s.last_contact else "not since start",
                 queue.get("last_send_error") or "")]),
        "<h2>Recent studies</h2>",
        _table(("finished", "study", "from", "outcome", "segmented", "unchanged", "failed", "case score", "time"),
               ((_clock(o.finished), o.study_uid, o.calling_ae, o.outcome, o.segmented, o.unchanged, o.failed,
                 "-" if o.case_score is None else f"{o.case_score:.2f}", f"{o.seconds:.1f} s") for o in s.studies),
               empty="no study since the node started"),
        "<h2>Recent refusals and failures</h2>",
        _table(("time", "event", "from", "what"),
               ((str(f.get("time", ""))[:19].replace("T", " "), f.get("event", ""),
                 " ".join(str(f.get("source", {}).get(k, "")) for k in ("ae", "address")).strip(),
                 f.get("outcome_text", "")) for f in s.failures),
               empty="none"),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(header: tuple[str, ...], rows: Iterable[tuple[Any, ...]], empty: str = "") -> str:
    body = ["<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows]
    if not body:
        return f"<p class=\"none\">{_e(empty)}</p>"
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
    return f"<table>{head}{''.join(body)}</table>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


_CSS = ("body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;"
        "margin-top:1.4em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
        "font-variant-numeric:tabular-nums;white-space:nowrap}th{background:#f2f2f2}.ok{color:#176b2c}.bad{color:#b00020}"
        ".none{color:#777}")
