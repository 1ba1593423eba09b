"""The bot's metrics, declared in one place with prometheus-client, and their text exposition.

The web process serves them at `GET /metrics`; a worker process serves its own (job durations, jobs started
and lost) at `GET /metrics` on `WORKER_METRICS_PORT` when that is set. With `PROMETHEUS_MULTIPROC_DIR` set for
every process of a machine, the web process's `/metrics` shows the workers' figures too (prometheus-client's
multiprocess mode). Each `Metrics` has its own registry, so tests may build as many as they like.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
JOB_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.commands = Counter("bot_commands", "slash commands handled", ["command", "outcome"], registry=r)
        self.ack_seconds = Histogram("bot_ack_seconds", "from a slash command's arrival to its ack",
                                     ["command"], buckets=ACK_BUCKETS, registry=r)
        self.webhooks = Counter("bot_webhooks", "GitHub webhook deliveries", ["event", "outcome"], registry=r)
        self.slack_requests = Counter("bot_slack_requests", "requests to /slack/events", registry=r)
        self.slack_refused = Counter("bot_slack_refused", "Slack requests refused (signature, size, body)",
                                     ["why"], registry=r)
        self.jobs_started = Counter("bot_jobs_started", "jobs started", ["kind"], registry=r)
        self.job_seconds = Histogram("bot_job_seconds", "a job attempt's duration, by kind and outcome",
                                     ["kind", "outcome"], buckets=JOB_BUCKETS, registry=r)
        self.jobs_lost = Counter("bot_jobs_lost", "jobs whose record or queue entry vanished", ["what"], registry=r)
        self.queue_jobs = Gauge("bot_queue_jobs", "jobs in the queue store, by queue and state", ["queue", "state"],
                                registry=r, multiprocess_mode="liveall")
        self.queue_up = Gauge("bot_queue_up", "1 when the queue store answered the last scrape", registry=r,
                              multiprocess_mode="liveall")

    def render(self) -> bytes:
        """The Prometheus text: this process's metrics, or every process's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
