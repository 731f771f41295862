"""Prometheus metrics every service exposes at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
REQUEST_SECONDS = Histogram("http_request_seconds", "HTTP request duration", ["service", "route"])
EVENTS_APPENDED = Counter("events_appended_total", "Events appended to the SQL event store", ["service"])
EVENTS_PUBLISHED = Counter("events_published_total", "Events published to JetStream by the relay", ["stream"])
EVENTS_CONSUMED = Counter("events_consumed_total", "Events applied by a projection", ["projection"])
EVENTS_DEAD_LETTERED = Counter("events_dead_lettered_total", "Events sent to the dead-letter stream", ["projection"])
CONSUMER_LAG = Gauge("consumer_lag", "Messages the projection's consumer has not yet received", ["projection"])
RELAY_LAG = Gauge("relay_lag_seconds", "Age of the oldest committed event the relay has not yet published", ["stream"])
RELAY_FAILURES = Counter("relay_failures_total", "Attempts of the relay to publish that failed", ["stream"])
RELAY_STALLED = Gauge("relay_stalled", "1 while the relay has published nothing for RELAY_STALL_SECONDS", ["stream"])
PROJECTION_REPLAYING = Gauge("projection_replaying", "1 while a rebuild replays the projection", ["projection"])


def prime(service: str, stream: str, projections: list[str]) -> None:
    """Create every series a service will report at 0, so /metrics shows them (and dashboards and alerts find
    them) from the first scrape, not from the first event."""
    EVENTS_APPENDED.labels(service)
    EVENTS_PUBLISHED.labels(stream)
    RELAY_LAG.labels(stream)
    RELAY_FAILURES.labels(stream)
    RELAY_STALLED.labels(stream)
    for name in projections:
        EVENTS_CONSUMED.labels(name)
        EVENTS_DEAD_LETTERED.labels(name)
        CONSUMER_LAG.labels(name)
        PROJECTION_REPLAYING.labels(name)
