"""Config: the contract's example parses; anything broken stops start-up with one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import config as config_mod
from core.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_config_parses():
    env = config_mod.load_env({})
    cfg = config_mod.load({"BOT_CONFIG": str(ROOT / "bot.example.toml")})
    assert cfg.default_repo.github == "valkey-io/valkey"
    assert cfg.default_repo.branch_for("9.1") == "9.1" and cfg.default_repo.branch_for("7.2") == "7.2"
    assert cfg.slack.maintainers == ("U01ABC", "S02GROUP")
    assert cfg.llm.model == "claude-sonnet-4-5"
    assert env.slack_mode == "console"


@pytest.mark.parametrize("data, key", [
    ({}, "repos"),
    ({"repos": [{"github": "no-slash"}]}, "repos[0].github"),
    ({"repos": [{"github": "a/b", "releases": {"9.1": "bad..branch"}}]}, "repos[0].releases.9.1"),
    ({"repos": [{"github": "a/b", "test_timeout_s": "long"}]}, "repos[0].test_timeout_s"),
    ({"repos": [{"github": "a/b"}], "slack": {"maintainers": ["alice"]}}, "slack.maintainers"),
    ({"repos": [{"github": "a/b"}], "slack": {"notify_channel": "#general"}}, "slack.notify_channel"),
    ({"repos": [{"github": "a/b"}, {"github": "A/B"}]}, "repos[1].github"),
    ({"repos": [{"github": "a/b"}], "adversarial": {"protocol": "http", "start": "x"}}, "adversarial.protocol"),
    ({"repos": [{"github": "a/b"}], "queue": {"heartbeat_s": 0}}, "queue.heartbeat_s"),
    ({"repos": [{"github": "a/b", "clone_url": "--upload-pack=evil"}]}, "repos[0].clone_url"),
    ({"repos": [{"github": "a/b"}], "sandbox": {"memory_mb": "lots"}}, "sandbox.memory_mb"),
    ({"repos": [{"github": "a/b"}], "sandbox": {"pids": 0}}, "sandbox.pids"),
    ({"repos": [{"github": "a/b"}], "sandbox": {"allow_unisolated": "yes"}}, "sandbox.allow_unisolated"),
    ({"repos": [{"github": "a/b"}], "sandbox": {"network": True}}, "sandbox.network"),
    ({"repos": [{"github": "a/b", "sandbox": {"disk_mb": -1}}]}, "repos[0].sandbox.disk_mb"),
    # Every table is declared and checked at start-up, not when a job first reads it.
    ({"repos": [{"github": "a/b"}], "provenence": {}}, "provenence"),
    ({"repos": [{"github": "a/b"}], "provenance": {"tainted": ["x"]}}, "provenance.upstream"),
    ({"repos": [{"github": "a/b"}], "provenance": {"upstream": "u", "tainted": []}}, "provenance.tainted"),
    ({"repos": [{"github": "a/b"}], "provenance": {"upstream": "u", "tainted": ["x"], "normalize": {"a": 1}}},
     "provenance.normalize.a"),
    ({"repos": [{"github": "a/b"}], "provenance": {"upstream": "u", "tainted": ["x"], "github": "nope"}},
     "provenance.github"),
    ({"repos": [{"github": "a/b"}], "summarize": {"input_tokens": 100}}, "summarize.input_tokens"),
    ({"repos": [{"github": "a/b"}], "summarize": {"areas": {"src/": 3}}}, "summarize.areas.src/"),
    ({"repos": [{"github": "a/b"}], "summarize": {"budget": 3}}, "summarize.budget"),
    ({"repos": [{"github": "a/b"}], "firstissue": {"nudge_after_days": 0}}, "firstissue.nudge_after_days"),
    ({"repos": [{"github": "a/b"}], "firstissue": {"return_after_days": "soon"}}, "firstissue.return_after_days"),
    ({"repos": [{"github": "a/b"}], "quotas": {"per_user_per_hour": 0}}, "quotas.per_user_per_hour"),
    ({"repos": [{"github": "a/b"}], "llm": {"max_turns": True}}, "llm.max_turns"),
    ({"repos": [{"github": "a/b"}], "queue": {"audit_ttl_days": 1.5}}, "queue.audit_ttl_days"),
    ({"repos": [{"github": "a/b"}], "adversarial": {"build": "make"}}, "adversarial.start"),
    ({"repos": [{"github": "a/b"}], "adversarial": {"start": "x", "invariants": [["A"]]}}, "adversarial.invariants"),
    ({"repos": [{"github": "a/b", "colne_url": "x"}]}, "repos[0].colne_url"),
])
def test_broken_config_names_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        config_mod.parse(data)
    message = str(err.value)
    assert f": {key}: " in message and "\n" not in message


def test_sandbox_limits_per_repo_override_the_global_ones():
    cfg = config_mod.parse({"repos": [{"github": "a/b", "sandbox": {"memory_mb": 8192}}, {"github": "c/d"}],
                            "sandbox": {"pids": 100}})
    assert cfg.sandbox_for(cfg.repos[0]).memory_mb == 8192 and cfg.sandbox_for(cfg.repos[0]).pids == 512
    assert cfg.sandbox_for(cfg.repos[1]).pids == 100 and not cfg.sandbox_for(cfg.repos[1]).allow_unisolated


def test_environment_errors():
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        config_mod.check_web(config_mod.load_env({"SLACK_BOT_TOKEN": "xoxb-1"}))
    config_mod.load_env({"SLACK_BOT_TOKEN": "xoxb-1"})      # a worker needs no signing secret
    with pytest.raises(ConfigError, match="PORT"):
        config_mod.load_env({"PORT": "eighty"})
    with pytest.raises(ConfigError, match="GITHUB_APP_ID"):
        config_mod.load_env({"GITHUB_APP_ID": "12"})
    env = config_mod.load_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert env.slack_mode == "socket"
    assert config_mod.load_env({"SLACK_API_URL": "http://x/api"}).slack_api_url == "http://x/api/"


def test_github_app_key_may_be_a_path(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n")
    env = config_mod.load_env({"GITHUB_APP_ID": "12", "GITHUB_APP_PRIVATE_KEY": str(pem)})
    assert env.github_app_private_key.startswith("-----BEGIN")


def run_bot(env_extra: dict, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "GITHUB_", "ANTHROPIC_", "BOT_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot"], input=stdin, capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


def test_start_up_with_a_broken_config_prints_one_line(tmp_path):
    (tmp_path / "bot.toml").write_text('[[repos]]\ngithub = "valkey"\n')
    result = run_bot({"BOT_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "config error: bot.toml: repos[0].github: expected \"owner/name\", got 'valkey'"]
    (tmp_path / "bot.toml").write_text("[[repos]\n")
    result = run_bot({"BOT_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not valid TOML" in result.stderr


def test_slack_mode_without_a_config_file_says_so(tmp_path):
    result = run_bot({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret",
                      "BOT_DATA_DIR": str(tmp_path / "d")}, tmp_path)
    assert result.returncode == 2
    assert "bot.toml: config file not found" in result.stderr


def test_declared_sections_are_typed_and_defaulted():
    cfg = config_mod.parse({"repos": [{"github": "a/b"}],
                            "provenance": {"upstream": "u", "tainted": ["unstable"], "normalize": {"Redis": "Valkey"}},
                            "summarize": {"areas": {"src/": "core"}}, "firstissue": {"nudge_after_days": 2}})
    assert cfg.provenance.tainted == ("unstable",) and cfg.provenance.normalize == {"Redis": "Valkey"}
    assert cfg.summarize.areas == {"src/": "core"} and cfg.summarize.input_tokens == 32_000
    assert cfg.firstissue.nudge_after_days == 2.0 and cfg.firstissue.return_after_days == 14.0
    assert config_mod.parse({"repos": [{"github": "a/b"}]}).provenance is None


def test_the_secret_variables_are_one_list():
    env = config_mod.load_env({name: f"value-of-{name.lower()}" for name in config_mod.Env.secret_variables()}
                              | {"GITHUB_APP_PRIVATE_KEY": "-----BEGIN KEY-----\nline-one-of-the-key-0000\n-----END KEY-----",
                                 "GITHUB_APP_ID": "12", "REDIS_URL": "redis://:hunter2-password@localhost:6379/0"})
    secrets = env.secrets()
    assert "hunter2-password" in secrets and "redis://:hunter2-password@localhost:6379/0" not in secrets
    assert "value-of-slack_bot_token" in secrets and "line-one-of-the-key-0000" in secrets
    assert set(config_mod.Env.secret_variables()) >= {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
                                                      "GITHUB_TOKEN", "GITHUB_APP_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET",
                                                      "ANTHROPIC_API_KEY", "REDIS_URL"}
