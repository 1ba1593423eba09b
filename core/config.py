"""Configuration: the TOML file (`BOT_CONFIG`, default ./bot.toml) and the environment.

The file holds settings, the environment holds secrets (see ../shared/CONTRACT.md). Anything wrong stops
start-up with one `ConfigError` line that names the key and says what is wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.names import branch_problem
from core.quotas import QuotaConfig

REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class ConfigError(Exception):
    """A broken or incomplete configuration; str() is the one line shown at start-up."""


@dataclass(frozen=True)
class AdversarialConfig:
    build: str = ""
    start: str = ""
    protocol: str = "resp"
    ready: tuple[str, ...] = ("PING",)
    invariants: tuple[tuple[str, ...], ...] = ()
    attempts: int = 200
    attempt_timeout_s: float = 15
    time_budget_s: float = 900


@dataclass(frozen=True)
class SandboxConfig:
    """`[sandbox]` (or `[repos.sandbox]`): limits of the sandbox that runs repository code (core/sandbox.py)."""

    allow_unisolated: bool = False
    memory_mb: int = 4096
    pids: int = 512
    disk_mb: int = 8192
    cpu_s: int = 3600
    nofile: int = 4096
    file_mb: int = 2048
    tmp_mb: int = 1024
    cpus: int = 0             # CPU bandwidth cap in cores (cgroup cpu.max); 0: none


@dataclass(frozen=True)
class RepoConfig:
    github: str
    default_branch: str = "main"
    clone_url: str = ""
    releases: dict[str, str] = field(default_factory=dict)
    test_command: str = ""
    test_timeout_s: int = 1800
    adversarial: AdversarialConfig | None = None
    sandbox: SandboxConfig | None = None
    protected_branches: tuple[str, ...] = ()   # besides default_branch, where backported commits may come from

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
    maintainers: tuple[str, ...] = ()
    notify_channel: str = ""
    security_channel: str = ""


@dataclass(frozen=True)
class LLMConfig:
    model: str = "claude-sonnet-4-5"
    max_tokens: int = 4096
    max_turns: int = 12


@dataclass(frozen=True)
class QueueConfig:
    """How jobs run; the defaults suit production, tests shorten them."""

    concurrency: int = 2
    heartbeat_s: int = 30
    sweep_s: int = 10
    job_timeout_s: int = 7200
    retries: int = 3
    audit_ttl_days: int = 30
    allow_eviction: bool = False      # run on a store that may evict keys (loudly warned); off by default


@dataclass(frozen=True)
class Env:
    """Secrets and deployment settings from the environment."""

    redis_url: str = ""
    data_dir: Path = Path(".bot-data")
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = "https://slack.com/api/"
    github_token: str = ""
    github_app_id: str = ""
    github_app_private_key: str = ""
    github_api_url: str = "https://api.github.com"
    github_webhook_secret: str = ""
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    port: int = 3000

    @property
    def slack_mode(self) -> str:
        """'socket', 'http' or 'console' (no Slack tokens at all)."""
        if self.slack_app_token and self.slack_bot_token:
            return "socket"
        if self.slack_bot_token or self.slack_signing_secret or self.slack_app_token:
            return "http"
        return "console"

    def secrets(self) -> list[str]:
        """Every secret value set, for scrubbing logs, messages and job records: the tokens, the password in
        REDIS_URL, and the GitHub App key whole and line by line (a traceback may quote one line)."""
        values = [self.slack_bot_token, self.slack_signing_secret, self.slack_app_token, self.github_token,
                  self.github_app_private_key, self.github_webhook_secret, self.anthropic_api_key,
                  redis_password(self.redis_url)]
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
    sections: dict[str, Any] = field(default_factory=dict)  # other tables, validated by their own modules
    env: Env = Env()
    path: Path | None = None
    demo: bool = False

    @property
    def default_repo(self) -> RepoConfig:
        return self.repos[0]

    def sandbox_for(self, repo: RepoConfig) -> SandboxConfig:
        return repo.sandbox or self.sandbox

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
    e = os.environ if environ is None else environ
    port_text = e.get("PORT", "3000") or "3000"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"PORT: expected a TCP port number, got {port_text!r}")
    key = e.get("GITHUB_APP_PRIVATE_KEY", "")
    if key and "-----BEGIN" not in key:
        try:
            key = Path(key).read_text()
        except OSError as exc:
            raise ConfigError(f"GITHUB_APP_PRIVATE_KEY: neither PEM text nor a readable file ({exc.strerror})")
    if bool(e.get("GITHUB_APP_ID")) != bool(key):
        raise ConfigError("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY: set both for GitHub App auth, or neither")
    slack_api = e.get("SLACK_API_URL") or "https://slack.com/api/"
    env = Env(
        redis_url=e.get("REDIS_URL", ""),
        data_dir=Path(e.get("BOT_DATA_DIR") or ".bot-data").absolute(),
        slack_bot_token=e.get("SLACK_BOT_TOKEN", ""),
        slack_signing_secret=e.get("SLACK_SIGNING_SECRET", ""),
        slack_app_token=e.get("SLACK_APP_TOKEN", ""),
        slack_api_url=slack_api if slack_api.endswith("/") else slack_api + "/",
        github_token=e.get("GITHUB_TOKEN", ""),
        github_app_id=e.get("GITHUB_APP_ID", ""),
        github_app_private_key=key,
        github_api_url=(e.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        github_webhook_secret=e.get("GITHUB_WEBHOOK_SECRET", ""),
        anthropic_api_key=e.get("ANTHROPIC_API_KEY", ""),
        anthropic_base_url=e.get("ANTHROPIC_BASE_URL", ""),
        port=int(port_text),
    )
    return env


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


def parse(data: dict[str, Any], *, env: Env = Env(), path: Path | None = None) -> Config:
    """Validate a decoded TOML document into a Config."""
    where = str(path or "bot.toml")

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {message}")

    repos_data = data.get("repos")
    if not isinstance(repos_data, list) or not repos_data:
        raise fail("repos", "at least one [[repos]] table is required")
    repos = []
    seen = set()
    for i, raw in enumerate(repos_data):
        key = f"repos[{i}]"
        if not isinstance(raw, dict):
            raise fail(key, "expected a table")
        repos.append(_repo(raw, key, fail, env))
        if repos[-1].github.lower() in seen:
            raise fail(f"{key}.github", f"{repos[-1].github} is listed twice")
        seen.add(repos[-1].github.lower())

    slack_raw = _table(data, "slack", fail)
    maintainers = slack_raw.get("maintainers", [])
    if not isinstance(maintainers, list) or not all(isinstance(m, str) for m in maintainers):
        raise fail("slack.maintainers", "expected a list of Slack user or user-group IDs")
    for m in maintainers:
        if not SLACK_ID.match(m):
            raise fail("slack.maintainers", f"{m!r} is not a Slack user (U…/W…) or user-group (S…) ID")
    for name in ("notify_channel", "security_channel"):
        value = slack_raw.get(name, "")
        if not isinstance(value, str) or (value and not CHANNEL_ID.match(value)):
            raise fail(f"slack.{name}", f"expected a Slack channel ID like C01ABC, got {value!r}")
    slack = SlackConfig(tuple(maintainers), slack_raw.get("notify_channel", ""), slack_raw.get("security_channel", ""))

    llm_raw = _table(data, "llm", fail)
    llm = LLMConfig(
        model=_get(llm_raw, "model", str, LLMConfig.model, "llm", fail),
        max_tokens=_get(llm_raw, "max_tokens", int, LLMConfig.max_tokens, "llm", fail),
        max_turns=_get(llm_raw, "max_turns", int, LLMConfig.max_turns, "llm", fail),
    )
    if not llm.model:
        raise fail("llm.model", "must not be empty")

    q_raw = _table(data, "queue", fail)
    queue = QueueConfig(**{
        name: _get(q_raw, name, int, getattr(QueueConfig, name), "queue", fail, minimum=1)
        for name in QueueConfig.__dataclass_fields__ if name != "allow_eviction"
    }, allow_eviction=_get(q_raw, "allow_eviction", bool, False, "queue", fail))

    adversarial = _adversarial(data["adversarial"], "adversarial", fail) if "adversarial" in data else None
    sandbox = _sandbox(data["sandbox"], "sandbox", fail) if "sandbox" in data else SandboxConfig()
    quotas_raw = _table(data, "quotas", fail)
    unknown = set(quotas_raw) - set(QuotaConfig.__dataclass_fields__)
    if unknown:
        raise fail(f"quotas.{sorted(unknown)[0]}", "unknown key (known: " + ", ".join(QuotaConfig.__dataclass_fields__) + ")")
    quotas = QuotaConfig(**{name: _get(quotas_raw, name, int, getattr(QuotaConfig, name), "quotas", fail,
                                       minimum=0 if "maintainer" in name else 1)
                            for name in QuotaConfig.__dataclass_fields__})
    known = {"repos", "slack", "llm", "queue", "adversarial", "sandbox", "quotas"}
    sections = {k: v for k, v in data.items() if k not in known}
    return Config(tuple(repos), slack, llm, queue, adversarial, sandbox, quotas, sections, env, path)


def _table(data: dict, name: str, fail) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise fail(name, "expected a table")
    return value


def _get(raw: dict, name: str, kind: type, default, prefix: str, fail, minimum: int | None = None):
    value = raw.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise fail(f"{prefix}.{name}", f"expected {kind.__name__}, got {value!r}")
    if minimum is not None and value < minimum:
        raise fail(f"{prefix}.{name}", f"must be at least {minimum}, got {value!r}")
    return value


def _repo(raw: dict, key: str, fail, env: Env) -> RepoConfig:
    github = raw.get("github")
    if not isinstance(github, str) or not REPO_NAME.match(github):
        raise fail(f"{key}.github", f"expected \"owner/name\", got {github!r}")
    default_branch = _get(raw, "default_branch", str, "main", key, fail)
    if branch_problem(default_branch):
        raise fail(f"{key}.default_branch", f"not a valid branch name: {default_branch!r} {branch_problem(default_branch)}")
    clone_url = _get(raw, "clone_url", str, "", key, fail)
    if not clone_url:
        web = "https://github.com" if "api.github.com" in env.github_api_url else env.github_api_url.split("/api/")[0]
        clone_url = f"{web}/{github}.git"
    elif clone_url.startswith("-"):
        raise fail(f"{key}.clone_url", "must not start with '-'")
    releases = raw.get("releases", {})
    if not isinstance(releases, dict):
        raise fail(f"{key}.releases", "expected a table of release name = branch")
    for name, branch in releases.items():
        if branch_problem(branch) or branch_problem(name):
            raise fail(f"{key}.releases.{name}", f"not a valid branch name: {branch!r} "
                       f"{branch_problem(branch) or branch_problem(name)}")
    test_command = _get(raw, "test_command", str, "", key, fail)
    timeout = _get(raw, "test_timeout_s", int, 1800, key, fail, minimum=1)
    adversarial = _adversarial(raw["adversarial"], f"{key}.adversarial", fail) if "adversarial" in raw else None
    sandbox = _sandbox(raw["sandbox"], f"{key}.sandbox", fail) if "sandbox" in raw else None
    protected = raw.get("protected_branches", [])
    if not isinstance(protected, list) or any(branch_problem(b) for b in protected):
        raise fail(f"{key}.protected_branches", "expected a list of valid branch names")
    return RepoConfig(github, default_branch, clone_url, dict(releases), test_command, timeout, adversarial,
                      sandbox, tuple(protected))


def _sandbox(raw: Any, key: str, fail) -> SandboxConfig:
    if not isinstance(raw, dict):
        raise fail(key, "expected a table")
    unknown = set(raw) - set(SandboxConfig.__dataclass_fields__)
    if unknown:
        raise fail(f"{key}.{sorted(unknown)[0]}", "unknown key (known: "
                   + ", ".join(SandboxConfig.__dataclass_fields__) + ")")
    d = SandboxConfig()
    values: dict[str, Any] = {"allow_unisolated": _get(raw, "allow_unisolated", bool, False, key, fail)}
    for name in SandboxConfig.__dataclass_fields__:
        if name != "allow_unisolated":
            values[name] = _get(raw, name, int, getattr(d, name), key, fail, minimum=0 if name == "cpus" else 1)
    return SandboxConfig(**values)


def _adversarial(raw: Any, key: str, fail) -> AdversarialConfig:
    if not isinstance(raw, dict):
        raise fail(key, "expected a table")
    d = AdversarialConfig()
    protocol = _get(raw, "protocol", str, d.protocol, key, fail)
    if protocol not in ("resp", "lines"):
        raise fail(f"{key}.protocol", f"expected \"resp\" or \"lines\", got {protocol!r}")
    ready = raw.get("ready", list(d.ready))
    if not isinstance(ready, list) or not all(isinstance(r, str) for r in ready):
        raise fail(f"{key}.ready", "expected a list of commands")
    invariants = raw.get("invariants", [])
    if not isinstance(invariants, list) or not all(
        isinstance(seq, list) and len(seq) >= 2 and all(isinstance(c, str) for c in seq) for seq in invariants
    ):
        raise fail(f"{key}.invariants", "expected a list of command lists, each with at least two commands")
    start = _get(raw, "start", str, "", key, fail)
    if not start:
        raise fail(f"{key}.start", "required: the command that starts the target, with {port}")
    return AdversarialConfig(
        build=_get(raw, "build", str, "", key, fail),
        start=start,
        protocol=protocol,
        ready=tuple(ready),
        invariants=tuple(tuple(seq) for seq in invariants),
        attempts=_get(raw, "attempts", int, d.attempts, key, fail, minimum=1),
        attempt_timeout_s=_get(raw, "attempt_timeout_s", float, d.attempt_timeout_s, key, fail),
        time_budget_s=_get(raw, "time_budget_s", float, d.time_budget_s, key, fail),
    )
