"""Every job kind a worker runs, in one list. A kind is declared once, in its module (`KIND = Kind(...)`: name,
key prefix, typed parameters, run function, slash command); adding one is its module plus a line here (and,
when people ask for it in Slack, a parser in commands/). `noop` is the queue path alone, for benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from core.kinds import Kind, Params, Registry
from jobs import adversarial, backport, backport_sweep, firstissue, provenance, replies, summarize


@dataclass(frozen=True)
class NoopParams(Params):
    tag: str = ""
    quiet: bool = False


async def _noop(job) -> None:
    """Does nothing and says nothing."""
    return None


NOOP = Kind("noop", "noop", NoopParams, _noop, about="nothing: the queue path alone (benchmarks, smoke checks)")

KINDS = Registry(
    backport.KIND,
    backport_sweep.STATUS,
    backport_sweep.SWEEP,
    backport_sweep.RECONCILE,
    backport_sweep.MARKERS,
    summarize.KIND,
    firstissue.KIND,
    firstissue.PR_OPENED,
    provenance.KIND,
    provenance.SELFTEST,
    adversarial.KIND,
    replies.KIND,
    NOOP,
)
