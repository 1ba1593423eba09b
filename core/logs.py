"""Logging set-up: every log line passes a filter that replaces secret values before it is written."""

from __future__ import annotations

import logging

from core.audit import scrub


class ScrubSecrets(logging.Filter):
    """Replaces secret values in the message, in the traceback (formatted here, scrubbed, and cached where the
    formatter looks for it) and in stack info."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = scrub(record.getMessage(), self.secrets)
            record.args = ()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = scrub(record.exc_text, self.secrets)
            if record.stack_info:
                record.stack_info = scrub(record.stack_info, self.secrets)
        return True


def setup(secrets: list[str], level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubSecrets(secrets))
