"""Logging set-up: every log line passes a filter that replaces secret values before it is written."""

from __future__ import annotations

import logging

from bot.audit import scrub


class ScrubSecrets(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = scrub(record.getMessage(), self.secrets)
            record.args = ()
        return True


def setup(secrets: list[str], level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubSecrets(secrets))
