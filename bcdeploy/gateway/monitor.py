"""The node's HTTP routes (http.py) onto its state: what each path reads, in one place."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from bcdeploy.gateway.audit import recent_failures
from bcdeploy.gateway.health import Readiness
from bcdeploy.gateway.http import HttpOptions, HttpServer, Page, json_page
from bcdeploy.gateway.metrics import NodeMetrics
from bcdeploy.gateway.spool import SPOOL, Spool
from bcdeploy.gateway.status_page import Snapshot, StudyOutcome, render

log = logging.getLogger("bcdeploy.gateway")


class Monitored(Protocol):
    """What the routes read of the node (node.Gateway)."""

    options: Any  # node.GatewayOptions
    started: float
    model: dict[str, Any]
    spool: Spool
    outbox: Any  # runtime.run.outbox.Outbox
    metrics: NodeMetrics
    destination_up: bool
    last_contact: float | None
    recent: Iterable[StudyOutcome]


def start_monitor(node: Monitored, options: HttpOptions) -> HttpServer:
    readiness = Readiness(model=lambda: node.model, spool=node.spool.root / SPOOL, free_bytes=node.spool.free_bytes,
                          min_free_bytes=node.spool.min_free_bytes, results=node.outbox.counts,
                          last_contact=lambda: node.last_contact, window_s=node.options.ready_window_s)

    def metrics() -> Page:
        body, content_type = node.metrics.exposition()
        return Page(HTTPStatus.OK, content_type, body)

    def ready() -> Page:
        checks = readiness.checks()
        ok = all(check["ok"] for check in checks.values())
        return json_page(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                         {"ready": ok, "failed": [name for name, check in checks.items() if not check["ok"]],
                          "checks": checks})

    def page() -> Page:
        snapshot = Snapshot(ae_title=node.options.scp.ae_title, started=node.started,
                            model={"file": Path(str(node.model.get("model", ""))).name,
                                   "sha256": node.model.get("sha256", ""), "backend": node.model.get("backend", "")},
                            queue=node.spool.status(node.outbox.counts()), destination=node.options.destination.describe(),
                            destination_up=node.destination_up, last_contact=node.last_contact,
                            ready=readiness.checks(), studies=list(node.recent), failures=recent_failures(node.spool.root))
        return Page(HTTPStatus.OK, "text/html; charset=utf-8", render(snapshot).encode())

    server = HttpServer(options, {"/metrics": metrics, "/healthz": lambda: json_page(HTTPStatus.OK, {"alive": True}),
                                  "/readyz": ready, "/": page})
    server.start()
    host, port = server.address
    log.info("HTTP on %s:%d: /metrics, /healthz, /readyz, status page /", host, port)
    return server
