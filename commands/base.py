"""What every command shares: the invocation, the reply types, and parsers for the argument forms in
../shared/CONTRACT.md (PR references, SHAs, releases, people). Parsers return a value or raise `Usage` with a
short reason; nothing here touches the network."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.config import REPO_NAME, Config
from core.kinds import Kind
from core.names import branch_problem, revision_problem
from core.queue import JobRequest
from core.services import Services

SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
PR_FORMS = [
    re.compile(r"^(?:PR)?#(?P<n>[0-9]{1,7})$", re.I),
    re.compile(r"^(?P<n>[0-9]{1,7})$"),
    re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<n>[0-9]{1,7})$"),
    re.compile(r"^<?https?://[A-Za-z0-9.:-]+/(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/pulls?/(?P<n>[0-9]{1,7})"
               r"(?:[/?#][^\s>|]*)?(?:\|[^>]*)?>?$"),
]
MENTION = re.compile(r"^<@(?P<id>[UW][A-Z0-9]{2,})(?:\|(?P<name>[^>]{0,80}))?>$")
PLAIN_MENTION = re.compile(r"^@(?P<name>[a-z0-9][a-z0-9._-]{0,79})$", re.I)


class Usage(Exception):
    """The command text is malformed; str() says what is wrong."""


@dataclass
class Invocation:
    command: str
    text: str
    user: str
    channel: str
    dest: str              # "slack" or "console"
    services: Services
    nonce: str = ""        # the request's Slack signature: what it queues, it queues once (a replay queues nothing)
    response_url: str = ""  # Slack's answer-back URL: works in any conversation for 30 minutes
    granted: bool = False  # a configured access rule let this person run it (a command's own checks defer to it)
    trigger_id: str = ""   # Slack's, for opening a modal within 3 s

    @property
    def config(self) -> Config:
        return self.services.config


@dataclass
class Reply:
    """An ephemeral answer and nothing queued."""

    text: str


@dataclass
class Modal:
    """Open this form (a Slack modal) instead of answering: the command was given nothing to work on."""

    view: dict


@dataclass
class Later:
    """Acknowledge with `text` now, then run `work` (which may call GitHub) and answer privately with its result."""

    text: str
    work: Callable[[], Awaitable[str]]


@dataclass
class PRRef:
    repo: str
    number: int

    def __str__(self) -> str:
        return f"{self.repo}#{self.number}"


@dataclass
class RangeRef:
    repo: str
    base: str
    head: str

    def __str__(self) -> str:
        return f"{self.base}..{self.head}"


@dataclass
class Command:
    """A slash command: its parser (`run`) turns the typed text into an answer, or into requests for `kind`."""

    name: str                      # without the slash
    usage: str                     # "/backport <release>[,<release>...] <ref> [<ref>...]"
    summary: str
    maintainers_only: bool
    run: Callable[[Invocation, list[str]], Awaitable[Reply | Later | Modal | JobRequest | list[JobRequest]]]
    examples: tuple[str, ...] = ()
    who: str = ""                  # who may run it, when more nuanced than maintainers_only
    kind: Kind | None = None       # the job kind it asks for (whose `command` is this name)
    subcommands: tuple[str, ...] = ()   # first words an `[access."<name> <sub>"]` rule may name

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind.command != self.name:
            raise ValueError(f"/{self.name} asks for {self.kind.name} jobs, whose command is /{self.kind.command}")

    def help(self) -> str:
        who = self.who or ("maintainers" if self.maintainers_only else "anyone")
        text = f"*{self.usage}* — {self.summary} ({who})"
        if self.examples:
            text += "\nExamples: " + " · ".join(f"`{e}`" for e in self.examples)
        return text


def repo_or_default(config: Config, repo: str | None) -> str:
    found = config.repo(repo)
    if found is None:
        known = ", ".join(r.github for r in config.repos)
        raise Usage(f"{repo} is not a configured repository (configured: {known})")
    return found.github


def parse_pr(config: Config, text: str, *, allow_range: bool = True) -> PRRef | RangeRef:
    """PR#1234, #1234, 1234, owner/repo#1234, the PR's URL, or (allow_range) base..head of the default repo."""
    for form in PR_FORMS:
        m = form.match(text)
        if m:
            return PRRef(repo_or_default(config, m.groupdict().get("repo")), int(m["n"]))
    base, sep, head = text.partition("..")
    if allow_range and sep and not head.startswith(".") and not revision_problem(base) \
            and not revision_problem(head):
        return RangeRef(config.default_repo.github, base, head)
    forms = "PR#1234, #1234, 1234, owner/repo#1234, a PR URL" + (", or base..head" if allow_range else "")
    raise Usage(f"{shown(text)} is not a pull request reference; use {forms}")


def parse_commit_or_pr(config: Config, text: str) -> str | PRRef:
    """A backport ref: a commit SHA (7-40 hex, digits-only included) or a merged PR in a form with `#` or a URL
    (a bare number would be ambiguous with a SHA here)."""
    if SHA.match(text):
        return text.lower()
    if not (text.isascii() and text.isdecimal()):
        try:
            ref = parse_pr(config, text, allow_range=False)
            if isinstance(ref, PRRef):
                return ref
        except Usage:
            pass
    raise Usage(f"{shown(text)} is neither a commit SHA (7-40 hex digits) nor a PR (PR#1234, #1234)")


def parse_releases(text: str) -> list[str]:
    releases = [r for r in text.split(",") if r]
    if not releases:
        raise Usage("name at least one release, e.g. 9.1 or 9.1,8.1")
    for r in releases:
        problem = branch_problem(r)
        if problem:
            raise Usage(f"{shown(r)} is not a valid release or branch name: it {problem}")
    return list(dict.fromkeys(releases))


def parse_person(text: str) -> tuple[str, str]:
    """A Slack person as (user_id, name): `<@U123|name>` from Slack, or a plain `@name` (id resolved later)."""
    m = MENTION.match(text)
    if m:
        return m["id"], m["name"] or ""
    m = PLAIN_MENTION.match(text)
    if m:
        return "", m["name"]
    raise Usage(f"{shown(text)} is not a person; mention them, e.g. @newcomer")


def valid_repo(text: str) -> bool:
    return bool(REPO_NAME.match(text))


def shown(text: str, limit: int = 40) -> str:
    """A piece of user text quoted back safely: short, in backticks, no mentions or markup."""
    text = text.replace("`", "'").replace("<", "‹").replace(">", "›").replace("@", "@\u200b")
    text = "".join(ch for ch in text if ch.isprintable())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`"


log = logging.getLogger(__name__)
_BACKGROUND: set[asyncio.Task] = set()


def in_background(coro) -> asyncio.Task:
    """Run work that follows an ack without holding the HTTP answer; failures are logged, never lost silently."""
    task = asyncio.create_task(coro)
    _BACKGROUND.add(task)

    def done(t: asyncio.Task) -> None:
        _BACKGROUND.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("work after an ack failed: %s", t.exception())

    task.add_done_callback(done)
    return task
