"""The local console, as a newcomer meets it: `python -m bot` with no Slack tokens and no bot.toml, commands
piped on standard input, an embedded Valkey, the demo repository, threads printed."""

from __future__ import annotations

from bot import demo
from tests.bot.test_config import run_bot


def test_piped_console_runs_the_demo_backports(tmp_path):
    data = tmp_path / "data"
    info = demo.build(data)
    script = "\n".join([
        "/help",
        f"/backport 1.0 {info['fix'][:10]}",
        f"/backport 1.0 {info['conflict'][:10]}",
        "/backport 1.0 nothex",
        "/summarize 1.0..main",
        "",
    ])
    result = run_bot({"BOT_DATA_DIR": str(data)}, tmp_path, stdin=script)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "offline demo" in out and "/backport <release>" in out
    # The clean fix: queued, tested, pushed to the demo remote.
    assert "Tests passed" in out
    assert f"Backport ready for review: branch `backport/{info['fix'][:10]}-to-release/1.0`" in out
    # The conflicting change: an escalation with files, commands, and the buttons' console equivalents.
    assert "A maintainer is needed: stage *pick*" in out
    assert "• `calc.py`" in out and "git cherry-pick -x" in out and "[Retry] [Dismiss]" in out
    assert "is neither a commit SHA" in out
    assert "*Digest* — 3 file(s)" in out and "No LLM summary was made" in out
    # Threads print as indented replies under their job.
    assert "  ↳ [bp-" in out
    import pygit2
    remote = pygit2.Repository(str(info["remote"]))
    assert f"refs/heads/backport/{info['fix'][:10]}-to-release/1.0" in list(remote.references)
    # The embedded server keeps its data under BOT_DATA_DIR.
    assert (data / "valkey" / "valkey.log").exists()


def test_console_retry_and_job_commands(tmp_path):
    data = tmp_path / "data"
    info = demo.build(data)
    first = run_bot({"BOT_DATA_DIR": str(data)}, tmp_path, stdin=f"/backport 1.0 {info['conflict'][:10]}\n")
    key = first.stdout.split("Queued job `")[1].split("`")[0]
    second = run_bot({"BOT_DATA_DIR": str(data)}, tmp_path,
                     stdin=f"/job {key}\n/retry {key}\n/dismiss {key}\n/retry nope\n")
    out = second.stdout
    assert f"job {key}:" in out and "escalated" in out   # the audit log survived the restart
    assert f"Retrying job `{key}`" in out
    assert "is running; wait for it to stop" in out
    assert out.count("A maintainer is needed") == 1       # the retry escalated again, once
    assert "Usage: /retry <job>" in out
    third = run_bot({"BOT_DATA_DIR": str(data)}, tmp_path, stdin=f"/dismiss {key}\n/dismiss {key}\n/retry {key}\n")
    out = third.stdout
    assert f"Dismissed job `{key}`" in out and f"Job `{key}` was already dismissed" in out
    assert "was dismissed; ask for it again" in out
