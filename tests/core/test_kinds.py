"""The typed seam of the queue: every kind declared once, its parameters checked when built and again when a
worker reads them back; commands and kinds agree; a job whose parameters do not fit fails visibly."""

from __future__ import annotations

import dataclasses
import json

import pytest

import commands
from core.kinds import BadParams, Kind, Params, Registry
from core.queue import JobRequest, job_info, submit
from jobs.adversarial import AdversarialParams
from jobs.backport import BackportParams
from jobs.backport_sweep import MarkersParams, ReconcileParams, StatusParams, SweepParams
from jobs.firstissue import FirstIssueParams, PrOpenedParams
from jobs.kinds import KINDS, NOOP, NoopParams
from jobs.provenance import ProvenanceParams, SelftestParams
from jobs.replies import ReplyParams
from jobs.summarize import SummarizeParams
from tests.conftest import config_dict

EXAMPLES = {
    "backport": BackportParams(repo="a/b", release="9.1", refs=("abc1234", "#12")),
    "summarize": SummarizeParams(repo="a/b", pr=12),
    "firstissue": FirstIssueParams(repo="a/b", user="U123", another=True),
    "pr-opened": PrOpenedParams(repo="a/b", number=3, login="octo", title="t"),
    "provenance": ProvenanceParams(repo="a/b", pr=7, head="f" * 40, quiet=True),
    "adversarial": AdversarialParams(repo="a/b", base="9.0", head="unstable", attempts=50),
    "gh-reply": ReplyParams(repo="a/b", pr=3, body="hi", mark="m"),
    "noop": NoopParams(tag="x"),
    "provenance-selftest": SelftestParams(repo="a/b", n=3),
    "backport-status": StatusParams(repo="a/b", release="8.1"),
    "backport-sweep": SweepParams(repo="a/b", at="2026-12-02 09:00 UTC"),
    "backport-reconcile": ReconcileParams(repo="a/b", release="8.1", head="a" * 40),
    "backport-markers": MarkersParams(repo="a/b", number=5, head="b" * 40),
}


def test_every_kind_has_an_example_that_survives_the_queue():
    assert set(EXAMPLES) == {k.name for k in KINDS}
    for name, params in EXAMPLES.items():
        kind = KINDS[name]
        assert isinstance(params, kind.params)
        assert kind.load(json.loads(json.dumps(params.dump()))) == params


@pytest.mark.parametrize("cls, data, field", [
    (BackportParams, {"repo": "a/b", "release": "9.1", "refs": "abc1234"}, "refs"),        # text, not a list
    (BackportParams, {"repo": "a/b", "release": "9.1", "refs": []}, "refs"),
    (BackportParams, {"repo": "a/b", "release": "bad..name", "refs": ["abc1234"]}, "release"),
    (BackportParams, {"repo": "a/b", "release": "9.1", "refs": [1234567]}, "refs[0]"),
    (BackportParams, {"repo": "a/b", "release": "9.1"}, "refs"),                           # missing
    (BackportParams, {"repo": "a/b", "release": "9.1", "refs": ["abc1234"], "force": True}, "force"),
    (SummarizeParams, {"repo": "a/b", "pr": True}, "pr"),                                  # a bool is no number
    (SummarizeParams, {"repo": "a/b", "pr": "12"}, "pr"),
    (SummarizeParams, {"repo": "a/b"}, "name a PR or a range"),
    (SummarizeParams, {"repo": "a/b", "pr": 3, "base": "x", "head": "y"}, "not both"),
    (AdversarialParams, {"repo": "a/b", "pr": 3, "attempts": 10**9}, "attempts"),
    (ProvenanceParams, {"repo": "a/b", "pr": 3, "quiet": "yes"}, "quiet"),
    (FirstIssueParams, {"repo": "a/b"}, "name the newcomer"),
    (ReplyParams, {"repo": "a/b", "pr": 3, "body": "x" * 30_000, "mark": "m"}, "body"),
    (NoopParams, ["not", "an", "object"], "not an object"),
])
def test_parameters_that_do_not_fit_are_refused_naming_the_field(cls, data, field):
    with pytest.raises(BadParams) as err:
        cls.load(data)
    assert field in str(err.value)


def test_a_request_takes_only_its_own_kind_of_parameters():
    with pytest.raises(BadParams, match="takes BackportParams"):
        JobRequest(kind=KINDS["backport"], params=SummarizeParams(repo="a/b", pr=1), summary="x")
    with pytest.raises(ValueError, match="priority"):
        JobRequest(kind=NOOP, params=NoopParams(), summary="x", priority="urgent")


def test_keys_follow_the_kind_and_its_parameters():
    a = JobRequest(kind=KINDS["backport"], params=EXAMPLES["backport"], summary="one")
    b = JobRequest(kind=KINDS["backport"], params=dataclasses.replace(EXAMPLES["backport"]), summary="two")
    c = JobRequest(kind=KINDS["backport"], params=dataclasses.replace(EXAMPLES["backport"], release="8.1"),
                   summary="one")
    assert a.key == b.key and a.key.startswith("bp-") and c.key != a.key


def test_a_registry_refuses_clashing_names_and_prefixes():
    async def run(job):
        return None

    @dataclasses.dataclass(frozen=True)
    class P(Params):
        x: str = ""

    with pytest.raises(ValueError, match="share the prefix"):
        Registry(Kind("one", "xx", P, run), Kind("two", "xx", P, run))
    with pytest.raises(ValueError, match="declared twice"):
        Registry(Kind("one", "xx", P, run), Kind("one", "yy", P, run))
    with pytest.raises(ValueError, match="prefix"):
        Kind("three", "Bad-1", P, run)


def test_commands_and_kinds_name_each_other():
    by_command = KINDS.commands()
    assert set(by_command) == {c.kind.command for c in commands.COMMANDS.values() if c.kind is not None}
    for name, command in commands.COMMANDS.items():
        assert command.kind is None or command.kind.command == name


async def test_a_job_whose_parameters_do_not_fit_fails_visibly(make_bot, remote):
    """A record written by an older version (or by hand): the worker refuses it in the thread, not with a
    traceback and three retries."""
    bot = await make_bot(config_dict(remote))
    req = JobRequest(kind=KINDS["summarize"], params=SummarizeParams(repo="acme/widget", pr=1), summary="odd",
                     requester="UMAINT01", channel="CWORK0001")
    req.for_worker = lambda: {"kind": "summarize", "params": {"repo": "acme/widget", "pr": "1; DROP"},
                              "dest": "slack", "requester": "UMAINT01"}
    sub = await submit(bot.services.queue, bot.services.redis, req)
    info = await bot.final(sub.key)
    assert info["status"] == "failed"
    assert "parameters do not fit a summarize job: SummarizeParams.pr must be a whole number" in bot.thread_of(info)
    assert (await job_info(bot.services.redis, sub.key))["status"] == "failed"
