"""Configured commands run with no secrets, no network where the machine allows it, and are killed whole on
timeout."""

from __future__ import annotations

import time

import pytest

from jobs.sandbox import can_unshare_net, run_command


async def test_no_secrets_reach_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_planted_secret_1234")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-planted-secret-1234")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-planted-1234")
    work = tmp_path / "checkout"
    work.mkdir()
    result = await run_command("env; pwd", work, 30)
    assert result.ok
    assert "planted" not in result.output
    assert f"HOME={work}-home" in result.output and str(work) in result.output


async def test_network_is_cut_where_the_machine_allows(tmp_path):
    if not can_unshare_net():
        pytest.skip("unshare -n is not permitted on this machine")
    work = tmp_path / "c"
    work.mkdir()
    # 127.0.0.1 inside a fresh network namespace has no listener (the loopback device is even down).
    probe = "python3 - <<'EOF'\nimport socket\ntry:\n    socket.create_connection(('127.0.0.1', 6379), 2)\n" \
            "    print('CONNECTED')\nexcept OSError as e:\n    print('NO NETWORK', e)\nEOF"
    result = await run_command(probe, work, 30)
    assert result.isolated and "NO NETWORK" in result.output


async def test_timeout_kills_the_whole_process_group(tmp_path):
    work = tmp_path / "c"
    work.mkdir()
    started = time.monotonic()
    result = await run_command(f"(sleep 60; touch {work}/late) & echo $! > {work}/child; sleep 60", work, 1)
    assert result.timed_out and not result.ok and "timed out after 1s" in result.output
    assert time.monotonic() - started < 15
    child = int((work / "child").read_text())
    time.sleep(0.2)
    assert not alive(child)
    assert not (work / "late").exists()


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
