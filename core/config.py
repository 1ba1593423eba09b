"""Configuration: the TOML file (`BOT_CONFIG`, default ./bot.toml) and the environment.

The file holds settings, the environment holds secrets (see ../shared/CONTRACT.md). Anything wrong stops
start-up with one `ConfigError` line that names the key and says what is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import MISSING, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.names import branch_problem

REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class ConfigError(Exception):
    """A broken or incomplete configuration; str() is the one line shown at start-up."""


def setting(default: Any = MISSING, *, minimum: float | None = None, choices: tuple = (), doc: str = "",
            factory: Any = MISSING) -> Any:
    """A declared setting: its default, its bounds and what it is for (README and error messages use these)."""
    meta = {"minimum": minimum, "choices": choices, "doc": doc}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AdversarialConfig:
    """`[adversarial]` (or `[repos.adversarial]`): how to build and start the target, and the attack budget."""

    start: str = setting(doc="the command that starts the target, with {port}")
    build: str = setting("", doc="run in the sandbox over the change's checkout")
    protocol: str = setting("resp", choices=("resp", "lines"))
    ready: tuple[str, ...] = setting(("PING",), doc="must answer before attacks begin")
    invariants: tuple[tuple[str, ...], ...] = setting((), doc="command sequences whose first and last replies match")
    attempts: int = setting(200, minimum=1)
    attempt_timeout_s: float = setting(15.0, minimum=0.1)
    time_budget_s: float = setting(900.0, minimum=1)

    def problems(self):
        if not self.start:
            yield "start", "required: the command that starts the target, with {port}"
        for seq in self.invariants:
            if len(seq) < 2:
                yield "invariants", "expected a list of command lists, each with at least two commands"


@dataclass(frozen=True)
class SandboxConfig:
    """`[sandbox]` (or `[repos.sandbox]`): limits of the sandbox that runs repository code (core/sandbox.py)."""

    allow_unisolated: bool = setting(False, doc="run without isolation where none is available (said each time)")
    memory_mb: int = setting(4096, minimum=1)
    pids: int = setting(512, minimum=1)
    disk_mb: int = setting(8192, minimum=1)
    cpu_s: int = setting(3600, minimum=1)
    nofile: int = setting(4096, minimum=1)
    file_mb: int = setting(2048, minimum=1)
    tmp_mb: int = setting(1024, minimum=1)
    cpus: int = setting(0, minimum=0, doc="CPU bandwidth cap in cores (cgroup cpu.max); 0: none")


@dataclass(frozen=True)
class RepoConfig:
    """`[[repos]]`: one repository; the first is the default for commands."""

    github: str = setting(doc="owner/name")
    default_branch: str = setting("main")
    clone_url: str = setting("", doc="defaults to the GitHub URL; a local path or file:// URL also works")
    releases: dict[str, str] = setting(factory=dict, doc="release name = branch")
    test_command: str = setting("")
    test_timeout_s: int = setting(1800, minimum=1)
    adversarial: AdversarialConfig | None = None
    sandbox: SandboxConfig | None = None
    backport: BackportConfig | None = None
    firstissue: FirstIssueConfig | None = None
    protected_branches: tuple[str, ...] = setting((), doc="besides default_branch, where backports may come from")

    def problems(self):
        if not REPO_NAME.match(self.github):
            yield "github", f"expected \"owner/name\", got {self.github!r}"
        if branch_problem(self.default_branch):
            yield "default_branch", f"not a valid branch name: {self.default_branch!r} {branch_problem(self.default_branch)}"
        if self.clone_url.startswith("-"):
            yield "clone_url", "must not start with '-'"
        for name, branch in self.releases.items():
            if branch_problem(branch) or branch_problem(name):
                yield f"releases.{name}", (f"not a valid branch name: {branch!r} "
                                           f"{branch_problem(branch) or branch_problem(name)}")
        if any(branch_problem(b) for b in self.protected_branches):
            yield "protected_branches", "expected a list of valid branch names"

    @property
    def owner(self) -> str:
        return self.github.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.github.split("/", 1)[1]

    def branch_for(self, release: str) -> str:
        """The branch a release name maps to; a name not listed is tried as a branch itself."""
        return self.releases.get(release, release)


@dataclass(frozen=True)
class SlackConfig:
    """`[slack]`: who the maintainers are and where unasked-for results go."""

    maintainers: tuple[str, ...] = setting((), doc="Slack user (U…/W…) and user-group (S…) IDs")
    notify_channel: str = setting("", doc="where GitHub-triggered jobs post")
    security_channel: str = setting("", doc="private: adversarial findings go here and only here")

    def problems(self):
        for m in self.maintainers:
            if not SLACK_ID.match(m):
                yield "maintainers", f"{m!r} is not a Slack user (U…/W…) or user-group (S…) ID"
        for name in ("notify_channel", "security_channel"):
            value = getattr(self, name)
            if value and not CHANNEL_ID.match(value):
                yield name, f"expected a Slack channel ID like C01ABC, got {value!r}"


@dataclass(frozen=True)
class LLMConfig:
    """`[llm]`: the model and its limits."""

    model: str = setting("claude-sonnet-4-5")
    max_tokens: int = setting(4096, minimum=1, doc="per reply")
    max_turns: int = setting(12, minimum=1, doc="tool-use turns per resolution")

    def problems(self):
        if not self.model:
            yield "model", "must not be empty"


@dataclass(frozen=True)
class QueueConfig:
    """`[queue]`: how jobs run; the defaults suit production, tests shorten them. `audit_ttl_days` is how long
    every job record, audit log, checkpoint and once-mark lives."""

    concurrency: int = setting(2, minimum=1)
    heartbeat_s: int = setting(30, minimum=1)
    sweep_s: int = setting(10, minimum=1)
    job_timeout_s: int = setting(7200, minimum=1)
    retries: int = setting(3, minimum=1)
    audit_ttl_days: int = setting(30, minimum=1)
    allow_eviction: bool = setting(False, doc="run on a store that may evict keys (loudly warned)")

    @property
    def ttl_s(self) -> int:
        return self.audit_ttl_days * 86400


@dataclass(frozen=True)
class QuotaConfig:
    """`[quotas]`: admission limits for people who are not maintainers; maintainers get their own (0 = no limit,
    the default: a maintainer backporting twenty PRs is the bot's purpose, not a flood)."""

    queued_per_user: int = setting(5, minimum=1, doc="jobs one person may have waiting or running")
    queued_per_channel: int = setting(20, minimum=1, doc="outsiders' jobs waiting or running in one channel")
    per_user_per_hour: int = setting(60, minimum=1, doc="commands that queue jobs")
    anyone_per_user_per_hour: int = setting(10, minimum=1, doc="the same, for commands anyone may run")
    per_channel_per_hour: int = setting(200, minimum=1)
    queued_per_maintainer: int = setting(0, minimum=0)
    maintainer_per_hour: int = setting(0, minimum=0)
    github_calls_per_user_per_hour: int = setting(2000, minimum=1)
    llm_tokens_per_user_per_day: int = setting(2_000_000, minimum=1)
    low_concurrency: int = setting(1, minimum=1, doc="job slots per worker for the low-priority queue")


@dataclass(frozen=True)
class ProvenanceConfig:
    """`[provenance]`: the forbidden upstream history (its refs) and what of it stays allowed."""

    upstream: str = setting(doc="the upstream's URL or local path")
    tainted: tuple[str, ...] = setting(doc="upstream refs whose history is off limits")
    allowed: tuple[str, ...] = setting((), doc="…except what these refs also reach")
    normalize: dict[str, str] = setting(factory=dict, doc="upstream name = our name")
    exclude: tuple[str, ...] = setting((), doc="path prefixes never fingerprinted")
    github: str = setting("", doc="the upstream's owner/name, for PR references")

    def problems(self):
        if not self.upstream or self.upstream.startswith("-"):
            yield "upstream", "expected the upstream's URL or local path"
        for key in ("tainted", "allowed", "exclude"):
            if not all(v and not v.startswith("-") for v in getattr(self, key)):
                yield key, "expected a list of names"
        if not self.tainted:
            yield "tainted", "name at least one upstream ref whose history is off limits"
        if self.github and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.github):
            yield "github", "expected the upstream's owner/name, e.g. redis/redis"


@dataclass(frozen=True)
class BackportConfig:
    """`[backport]` (or `[repos.backport]`): what each release wants (labels, a Projects v2 board), the sweep
    that backports it, how the source PR is marked done, and the identity of the commits the bot makes."""

    labels: tuple[str, ...] = setting(("backport {release}", "backport-{release}", "backport:{release}",
                                       "backport/{release}"),
                                      doc="merged PRs carrying one of these labels are wanted for {release}")
    project: str = setting("", doc='a Projects (v2) board: "orgs/<org>/projects/<n>" or "users/<login>/projects/<n>"')
    project_column: str = setting("To be backported", doc="the board's status value that means wanted")
    project_done_column: str = setting("Done", doc="where the item moves once the commit is on the branch")
    project_status_field: str = setting("Status", doc="the single-select field holding the column")
    project_release_field: str = setting("Release", doc="the field naming the item's release")
    sweep: str = setting("", doc="cron (UTC, five fields) of the automatic sweep; empty: no sweep")
    mode: str = setting("per-pr", choices=("per-pr", "rolling"), doc="one PR per source PR, or one per branch")
    sweep_max: int = setting(10, minimum=1, doc="picks per release in one sweep run")
    done_label: str = setting("backported-to-{release}", doc="set on the source PR once its commit is on the branch")
    signoff: bool = setting(False, doc="add `Signed-off-by:` for the bot's identity (the author's lines are kept)")
    name: str = setting("maintainer-bot", doc="committer name")
    email: str = setting("maintainer-bot@users.noreply.github.com", doc="committer email")

    def problems(self):
        if not self.name.strip() or any(c in self.name for c in "<>\n"):
            yield "name", "expected a plain name"
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", self.email):
            yield "email", f"expected an email address, got {self.email!r}"
        for label in self.labels:
            if label.count("{release}") != 1 or len(label) > 100 or "\n" in label:
                yield "labels", f"each label names {{release}} once, e.g. \"backport {{release}}\"; got {label!r}"
        if self.done_label and (len(self.done_label) > 100 or self.done_label.count("{release}") > 1):
            yield "done_label", f"expected a label such as \"backported-to-{{release}}\", got {self.done_label!r}"
        if self.project and not PROJECT.fullmatch(self.project):
            yield "project", f'expected "orgs/<org>/projects/<n>" or "users/<login>/projects/<n>", got {self.project!r}'
        if self.sweep:
            from croniter import croniter

            if len(self.sweep.split()) != 5 or not croniter.is_valid(self.sweep):
                yield "sweep", f"expected a five-field cron line (UTC) such as \"0 9 * * *\", got {self.sweep!r}"

    def label_for(self, release: str) -> str:
        """The done label for a release ('' when none is configured)."""
        return self.done_label.replace("{release}", release)


PROJECT = re.compile(r"(orgs|users)/[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/projects/[0-9]{1,9}")


@dataclass(frozen=True)
class SummarizeConfig:
    """`[summarize]`: the budget of one model call, and areas for repos whose layout says little."""

    input_tokens: int = setting(32_000, minimum=2000, doc="counted with the API, never guessed")
    areas: dict[str, str] = setting(factory=dict, doc="path prefix = area name")


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: where people reach the web process (links to audit pages), and how long such a link lives."""

    public_url: str = setting("", doc="e.g. https://bot.example.org; default http://localhost:<PORT>")
    link_ttl_s: int = setting(3600, minimum=60, doc="how long an audit link works")

    def problems(self):
        if self.public_url and (not self.public_url.startswith(("https://", "http://"))
                                or any(c in self.public_url for c in " <>|\"'")):
            yield "public_url", f"expected an http(s) URL, got {self.public_url!r}"

    def base(self, port: int) -> str:
        return self.public_url.rstrip("/") or f"http://localhost:{port}"


@dataclass(frozen=True)
class FirstIssueConfig:
    """`[firstissue]` (or `[repos.firstissue]`): the newcomer's clock, who counts as a newcomer, and pinned
    issues. The clock runs from the newcomer's own last activity (their comments on the issue, commits and
    comments on their PR for it), never from the bot's nudge or other people's comments."""

    nudge_after_days: float = setting(14.0, minimum=0.001, doc="days without the newcomer's activity before one nudge")
    return_after_days: float = setting(14.0, minimum=0.001, doc="days after the nudge, still quiet, before it returns")
    pin_label: str = setting("", doc="an issue carrying this label is never returned to the pool")
    max_merged_prs: int = setting(2, minimum=0, doc="a person with more merged PRs in the repo is no newcomer")


@dataclass(frozen=True)
class AccessRule:
    """`[access.<command>]` (or `[access."<command> <subcommand>"]`): who may run it and where. An empty `who`
    keeps the command's own default (maintainers, or anyone for /summarize); empty `channels`: anywhere."""

    who: tuple[str, ...] = setting((), doc='user IDs, user-group IDs, "maintainers" or "anyone"')
    channels: tuple[str, ...] = setting((), doc="channel IDs where it may run; empty: anywhere")

    def problems(self):
        for w in self.who:
            if w not in ("maintainers", "anyone") and not SLACK_ID.match(w):
                yield "who", f'expected user IDs (U…), user-group IDs (S…), "maintainers" or "anyone", got {w!r}'
        for c in self.channels:
            if not CHANNEL_ID.match(c):
                yield "channels", f"expected Slack channel IDs like C01ABC, got {c!r}"


# Every command and subcommand an access rule may name (tests/commands/test_access.py keeps it equal to the
# commands' own declarations).
ACCESS_NAMES = ("backport", "backport status", "backport sweep", "summarize", "firstissue", "firstissue add",
                "firstissue list", "firstissue remove", "firstissue link", "firstissue mentor", "firstissue mentors",
                "provenance",
                "provenance selftest", "adversarial")


def variable(name: str, default: Any = "", *, secret: bool = False) -> Any:
    """A field of Env read from the environment variable `name`; `secret` values are scrubbed everywhere."""
    return field(default=default, metadata={"env": name, "secret": secret})


@dataclass(frozen=True)
class Env:
    """Secrets and deployment settings from the environment: each field names its variable, and whether it is
    a secret (scrubbed from logs, messages, job records and sandbox output) — the one list of them."""

    redis_url: str = variable("REDIS_URL", secret=True)        # its password is the secret part
    data_dir: Path = variable("BOT_DATA_DIR", Path(".bot-data"))
    slack_bot_token: str = variable("SLACK_BOT_TOKEN", secret=True)
    slack_signing_secret: str = variable("SLACK_SIGNING_SECRET", secret=True)
    slack_app_token: str = variable("SLACK_APP_TOKEN", secret=True)
    slack_api_url: str = variable("SLACK_API_URL", "https://slack.com/api/")
    github_token: str = variable("GITHUB_TOKEN", secret=True)
    github_app_id: str = variable("GITHUB_APP_ID")
    github_app_private_key: str = variable("GITHUB_APP_PRIVATE_KEY", secret=True)
    github_api_url: str = variable("GITHUB_API_URL", "https://api.github.com")
    github_webhook_secret: str = variable("GITHUB_WEBHOOK_SECRET", secret=True)
    anthropic_api_key: str = variable("ANTHROPIC_API_KEY", secret=True)
    anthropic_base_url: str = variable("ANTHROPIC_BASE_URL")
    port: int = variable("PORT", 3000)
    worker_metrics_port: int = variable("WORKER_METRICS_PORT", 0)     # a worker's own /metrics; 0: none

    @classmethod
    def secret_variables(cls) -> list[str]:
        return [f.metadata["env"] for f in dataclasses.fields(cls) if f.metadata.get("secret")]

    @property
    def slack_mode(self) -> str:
        """'socket', 'http' or 'console' (no Slack tokens at all)."""
        if self.slack_app_token and self.slack_bot_token:
            return "socket"
        if self.slack_bot_token or self.slack_signing_secret or self.slack_app_token:
            return "http"
        return "console"

    def secrets(self) -> list[str]:
        """Every secret value set, for scrubbing logs, messages and job records: the secret variables, the
        password in REDIS_URL (not the whole URL), and the GitHub App key line by line (a traceback may quote
        one line)."""
        values = [getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.metadata.get("secret") and f.name != "redis_url"]
        values.append(redis_password(self.redis_url))
        values += [line.strip() for line in self.github_app_private_key.splitlines()
                   if len(line.strip()) >= 16 and not line.startswith("-----")]
        # Longest first, so a secret that contains another is replaced whole.
        return sorted({v for v in values if v and len(v) >= 6}, key=len, reverse=True)


@dataclass(frozen=True)
class Config:
    repos: tuple[RepoConfig, ...]
    slack: SlackConfig = SlackConfig()
    llm: LLMConfig = LLMConfig()
    queue: QueueConfig = QueueConfig()
    adversarial: AdversarialConfig | None = None
    sandbox: SandboxConfig = SandboxConfig()
    quotas: QuotaConfig = QuotaConfig()
    provenance: ProvenanceConfig | None = None
    summarize: SummarizeConfig = SummarizeConfig()
    backport: BackportConfig = BackportConfig()
    firstissue: FirstIssueConfig = FirstIssueConfig()
    web: WebConfig = WebConfig()
    access: dict[str, AccessRule] = field(default_factory=dict)
    env: Env = Env()
    path: Path | None = None
    demo: bool = False

    @property
    def default_repo(self) -> RepoConfig:
        return self.repos[0]

    def sandbox_for(self, repo: RepoConfig) -> SandboxConfig:
        return repo.sandbox or self.sandbox

    def backport_for(self, repo: RepoConfig) -> BackportConfig:
        return repo.backport or self.backport

    def firstissue_for(self, repo: RepoConfig | None) -> FirstIssueConfig:
        return (repo.firstissue if repo is not None else None) or self.firstissue

    def repo(self, github: str | None) -> RepoConfig | None:
        """The configured repo named owner/name (case-insensitive), or the default one for None."""
        if github is None:
            return self.default_repo
        for repo in self.repos:
            if repo.github.lower() == github.lower():
                return repo
        return None


def redis_password(url: str) -> str:
    """The password in a redis:// or rediss:// URL ('' when there is none)."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return ""
    return unquote(password) if password else ""


def load_env(environ: dict[str, str] | None = None) -> Env:
    """Env from the environment: each field from the variable it declares, then the few that need a check."""
    e = os.environ if environ is None else environ
    values: dict[str, Any] = {f.name: e.get(f.metadata["env"]) or f.default for f in dataclasses.fields(Env)}
    for name, var, least in (("port", "PORT", 1), ("worker_metrics_port", "WORKER_METRICS_PORT", 0)):
        text = str(values[name])
        if not text.isascii() or not text.isdecimal() or not least <= int(text) < 65536:
            raise ConfigError(f"{var}: expected a TCP port number, got {text!r}")
        values[name] = int(text)
    key = values["github_app_private_key"]
    if key and "-----BEGIN" not in key:
        try:
            values["github_app_private_key"] = Path(key).read_text()
        except OSError as exc:
            raise ConfigError(f"GITHUB_APP_PRIVATE_KEY: neither PEM text nor a readable file ({exc.strerror})")
    if bool(values["github_app_id"]) != bool(values["github_app_private_key"]):
        raise ConfigError("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY: set both for GitHub App auth, or neither")
    values["data_dir"] = Path(values["data_dir"]).absolute()
    values["slack_api_url"] = values["slack_api_url"].rstrip("/") + "/"
    values["github_api_url"] = values["github_api_url"].rstrip("/")
    return Env(**values)


def check_web(env: Env) -> None:
    """What the web process needs beyond what every process needs (a worker has no use for the signing secret)."""
    if env.slack_mode == "http" and not (env.slack_bot_token and env.slack_signing_secret):
        missing = "SLACK_BOT_TOKEN" if not env.slack_bot_token else "SLACK_SIGNING_SECRET"
        raise ConfigError(f"{missing}: required for Slack HTTP mode (or unset all SLACK_* for the local console)")


def config_path(environ: dict[str, str] | None = None) -> tuple[Path, bool]:
    """The config file's path and whether it was named explicitly by BOT_CONFIG."""
    e = os.environ if environ is None else environ
    if e.get("BOT_CONFIG"):
        return Path(e["BOT_CONFIG"]), True
    return Path("bot.toml"), False


def load(environ: dict[str, str] | None = None, *, allow_demo: bool = False) -> Config:
    """Read environment and config file. With allow_demo and no file, the caller builds a demo config."""
    env = load_env(environ)
    path, explicit = config_path(environ)
    if not path.exists():
        if allow_demo and not explicit:
            return Config(repos=(), env=env, demo=True)
        raise ConfigError(f"{path}: config file not found (set BOT_CONFIG, or copy bot.example.toml to bot.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})")
    return parse(data, env=env, path=path)


# The tables of bot.toml: each a dataclass whose fields declare the keys, their types, defaults and bounds.
TABLES: dict[str, type] = {
    "slack": SlackConfig, "llm": LLMConfig, "queue": QueueConfig, "sandbox": SandboxConfig, "quotas": QuotaConfig,
    "adversarial": AdversarialConfig, "provenance": ProvenanceConfig, "summarize": SummarizeConfig,
    "backport": BackportConfig,
    "firstissue": FirstIssueConfig,
    "web": WebConfig,
}
OPTIONAL = {"adversarial", "provenance"}      # absent: the feature is off


def parse(data: dict[str, Any], *, env: Env = Env(), path: Path | None = None) -> Config:
    """Validate a decoded TOML document into a Config: every table, every key, every type, at once."""
    where = str(path or "bot.toml")

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {message}")

    unknown = sorted(set(data) - set(TABLES) - {"repos", "access"})
    if unknown:
        raise fail(unknown[0], "unknown table (known: repos, access, " + ", ".join(TABLES) + ")")
    raw_access = data.get("access", {})
    if not isinstance(raw_access, dict):
        raise fail("access", "expected a table of [access.<command>] tables")
    access = {}
    for name, raw in raw_access.items():
        if name not in ACCESS_NAMES:
            raise fail(f"access.{name}", "not a command (known: " + ", ".join(ACCESS_NAMES) + ")")
        access[name] = build(AccessRule, raw, f"access.{name}", fail)
    repos_data = data.get("repos")
    if not isinstance(repos_data, list) or not repos_data:
        raise fail("repos", "at least one [[repos]] table is required")
    repos: list[RepoConfig] = []
    seen = set()
    for i, raw in enumerate(repos_data):
        key = f"repos[{i}]"
        if not isinstance(raw, dict):
            raise fail(key, "expected a table")
        if not isinstance(raw.get("github"), str):
            raise fail(f"{key}.github", f"expected \"owner/name\", got {raw.get('github')!r}")
        nested = {name: build(TABLES[name], raw[name], f"{key}.{name}", fail)
                  for name in ("adversarial", "sandbox", "backport", "firstissue") if name in raw}
        repo = build(RepoConfig, {k: v for k, v in raw.items() if k not in nested}, key, fail)
        if not repo.clone_url:
            web = "https://github.com" if "api.github.com" in env.github_api_url else env.github_api_url.split("/api/")[0]
            repo = replace(repo, clone_url=f"{web}/{repo.github}.git")
        repo = replace(repo, **nested)
        if repo.github.lower() in seen:
            raise fail(f"{key}.github", f"{repo.github} is listed twice")
        seen.add(repo.github.lower())
        repos.append(repo)
    tables = {name: build(cls, data.get(name, {}), name, fail) for name, cls in TABLES.items()
              if name in data or name not in OPTIONAL}
    config = Config(tuple(repos), env=env, path=path, access=access, **tables)
    for i, repo in enumerate(config.repos):
        if config.backport_for(repo).sweep and not config.slack.notify_channel:
            raise fail(f"repos[{i}].backport.sweep", "a sweep posts its summary in [slack] notify_channel; set it")
    return config


def build(cls: type, raw: Any, key: str, fail):
    """One table checked against its dataclass: no unknown key, each value of its declared type and within its
    bounds, then the class's own `problems()`; the first problem is raised, naming its key."""
    if not isinstance(raw, dict):
        raise fail(key, "expected a table")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    nested = {name for name, hint in hints.items() if name in fields and _nested(hint)}
    unknown = sorted(set(raw) - (set(fields) - nested))
    if unknown:
        raise fail(f"{key}.{unknown[0]}", "unknown key (known: " + ", ".join(n for n in fields if n not in nested) + ")")
    values = {}
    for name, f in fields.items():
        if name in nested:
            continue
        if name not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise fail(f"{key}.{name}", "required" + (f": {f.metadata['doc']}" if f.metadata.get("doc") else ""))
            continue
        values[name] = _value(raw[name], hints[name], f"{key}.{name}", fail)
        meta = f.metadata
        if meta.get("minimum") is not None and values[name] < meta["minimum"]:
            raise fail(f"{key}.{name}", f"must be at least {meta['minimum']}, got {values[name]!r}")
        if meta.get("choices") and values[name] not in meta["choices"]:
            raise fail(f"{key}.{name}", "expected " + " or ".join(f'"{c}"' for c in meta["choices"])
                       + f", got {values[name]!r}")
    obj = cls(**values)
    for sub, message in getattr(obj, "problems", lambda: ())():
        raise fail(f"{key}.{sub}", message)
    return obj


def _nested(hint) -> bool:
    return any(isinstance(a, type) and dataclasses.is_dataclass(a) for a in typing.get_args(hint))


def _value(value: Any, hint: Any, key: str, fail) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail(key, f"expected a number, got {value!r}")
    if hint in (str, int, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise fail(key, f"expected {hint.__name__}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list):
            raise fail(key, f"expected a list, got {value!r}")
        return tuple(_value(v, args[0], key, fail) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(key, f"expected a table, got {value!r}")
        return {_value(k, args[0], key, fail): _value(v, args[1], f"{key}.{k}", fail) for k, v in value.items()}
    raise TypeError(f"{key}: no rule for {hint!r}")
