"""`bcdeploy serve`'s own counters, at `GET /segment/metrics` in the Prometheus text format.

Ray exports Serve's generic metrics (replica queue lengths, proxy latencies) on each node's metrics
port; what an application owner asks (how many images, how many refused and why, how long one takes)
only the application knows. Every request passes the one HttpIngress replica (ray_app.py), which
counts it here; its registry is served on the application's own route, so a scrape needs no Ray
metrics agent and reaches the same host and port as the clients.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PREFIX = "bcdeploy_serve"
# one request's time in the ingress, body read to reply: decode, segment, encode
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0)
# what a refused request is counted as, by its HTTP status
REASONS = {400: "bad_image", 405: "method", 408: "body_stalled", 413: "body_too_large", 503: "replicas_unavailable"}


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(f"{PREFIX}_requests", "Requests answered, by route and HTTP status",
                                ["route", "code"], registry=self.registry)
        self.refused = Counter(f"{PREFIX}_refused", "Requests refused, by reason", ["reason"], registry=self.registry)
        self.latency = Histogram(f"{PREFIX}_request_seconds", "Segmentation requests answered 200, body read to "
                                 "reply", buckets=LATENCY_BUCKETS, registry=self.registry)

    def answered(self, route: str, code: int, seconds: float | None = None) -> None:
        self.requests.labels(route, str(code)).inc()
        if code in REASONS:
            self.refused.labels(REASONS[code]).inc()
        elif code == 200 and route == "segment" and seconds is not None:
            self.latency.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
