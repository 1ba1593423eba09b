"""The sandbox, tried the way a hostile PR would: every escape that worked before bwrap (reading the worker's
environment through /proc, nsenter into its namespaces, the host's loopback, writing outside the checkout,
reading BOT_DATA_DIR, a setsid or double-fork survivor) fails, and every limit (fork bomb, huge file, memory
hog, CPU loop, full disk, wall clock) ends as a clear "limit reached" result while the worker carries on.
A small C program still builds with gcc inside. Without bwrap, nothing runs unless the repo allows it."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from core import sandbox
from core.sandbox import Limits, Unavailable

pytestmark = pytest.mark.skipif(not sandbox.available(), reason=f"no sandbox on this machine: {sandbox.probe()}")

PLANTED = "ghp_PLANTEDsecret0123456789"
ESCAPES = Path(__file__).resolve().parents[1] / "targets" / "escapes.sh"


def checkout(tmp_path: Path) -> Path:
    work = tmp_path / "data" / "work" / "checkout-1"
    work.mkdir(parents=True)
    shutil.copy(ESCAPES, work / "escapes.sh")
    return work


def alive_with(marker: str) -> list[int]:
    """Processes on this machine (not zombies) whose command line holds `marker`."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdecimal():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z" and "pytest" not in cmd:
            found.append(int(p.name))
    return found


async def test_every_escape_fails_and_nothing_survives(tmp_path, monkeypatch, redis_url):
    monkeypatch.setenv("GITHUB_TOKEN", PLANTED)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-" + PLANTED)
    data = tmp_path / "data"
    work = checkout(tmp_path)
    (data / "bot.toml").write_text(f'token = "{PLANTED}"\n')
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    result = await sandbox.run(["/bin/sh", "escapes.sh", str(os.getpid()), port, str(data), "3133"],
                               work, Limits(timeout_s=60))
    assert result.ok, result.output
    assert "PROBES DONE" in result.output
    assert "ESCAPED" not in result.output, result.output
    assert PLANTED not in result.output
    assert result.isolated and "network (loopback only)" in result.applied
    # Only the checkout was writable, and what was written there stays.
    assert (work / "written-inside").read_text() == "ok\n"
    assert not (data / "escape").exists() and not Path("/usr/escape").exists()
    # The setsid'd sleeper and the double-forked one died with the sandbox.
    deadline = time.monotonic() + 5
    while alive_with("sleep 31337") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert alive_with("sleep 31337") == []


async def test_the_environment_is_fixed_and_holds_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" + PLANTED)
    result = await sandbox.run("env; id -u; pwd", checkout(tmp_path), Limits(timeout_s=30))
    assert result.ok
    assert PLANTED not in result.output
    lines = result.output.splitlines()
    assert "HOME=/home/sandbox" in lines and "CI=true" in lines and "1000" in lines and "/checkout" in lines
    assert not any(line.startswith(("REDIS_URL", "BOT_", "SLACK_", "GITHUB_")) for line in lines)


async def test_output_is_scrubbed_of_known_secrets(tmp_path):
    result = await sandbox.run(f"echo 'token {PLANTED} here'", checkout(tmp_path), Limits(timeout_s=30),
                               secrets=[PLANTED])
    assert PLANTED not in result.output and "token [secret] here" in result.output


@pytest.mark.parametrize("command, limit", [
    ("f() { f | f & }; f; sleep 5", "processes"),
    ("head -c 10000000000 /dev/zero > huge", "file size"),
    ("python3 -c \"b = b'x' * (20 << 30)\"", "memory"),
    ("python3 -c 'while True: pass'", "CPU time"),
    ("for i in 1 2 3 4 5 6 7 8; do head -c 9000000 /dev/zero > part$i; done; sleep 10", "disk"),
    ("sleep 60", "time"),
])
async def test_each_limit_ends_as_a_clear_result(tmp_path, command, limit):
    limits = Limits(timeout_s=8, cpu_s=2, memory_mb=512, pids=64, file_mb=20, disk_mb=40)
    started = time.monotonic()
    result = await sandbox.run(["/bin/bash", "-c", command], checkout(tmp_path), limits)
    assert result.limit == limit, (result.verdict, result.output[-500:])
    assert not result.ok and result.verdict == f"limit reached: {limit}"
    assert time.monotonic() - started < 30
    # The worker carries on: the next sandbox runs normally.
    again = await sandbox.run("echo fine", checkout(tmp_path / "next"), Limits(timeout_s=30))
    assert again.ok and "fine" in again.output


async def test_limits_say_which_mechanism_applied(tmp_path):
    text = sandbox.describe(Limits(pids=77, memory_mb=333))
    if sandbox.cgroup_mode():
        assert f"cgroup {sandbox.cgroup_mode()}: 77 processes, 333 MB memory" in text
    else:
        assert "no writable cgroup: RLIMIT_AS 333 MB" in text


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
async def test_a_c_program_builds_and_runs_inside(tmp_path):
    work = checkout(tmp_path)
    (work / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("built inside");return 0;}\n')
    (work / "Makefile").write_text("hello: hello.c\n\tcc -O2 -o hello hello.c\n")
    result = await sandbox.run("make -j2 && ./hello", work, Limits(timeout_s=120))
    assert result.ok, result.output
    assert "built inside" in result.output and (work / "hello").exists()


async def test_no_sandbox_means_no_run_unless_the_repo_allows_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT_BWRAP", str(tmp_path / "no-such-bwrap"))
    for cached in (sandbox.bwrap_path, sandbox.probe, sandbox.overlay_works):
        cached.cache_clear()
    try:
        assert not sandbox.available() and "bwrap" in sandbox.probe()
        with pytest.raises(Unavailable) as refused:
            await sandbox.run("echo ran > ran.txt", checkout(tmp_path), Limits(timeout_s=30))
        assert "allow_unisolated" in str(refused.value) and "\n" not in str(refused.value)
        assert not (tmp_path / "data" / "work" / "checkout-1" / "ran.txt").exists()
        allowed = await sandbox.run("echo ran", checkout(tmp_path / "b"), Limits(timeout_s=30, allow_unisolated=True))
        assert allowed.ok and not allowed.isolated and "NO namespaces" in allowed.applied
    finally:
        monkeypatch.delenv("BOT_BWRAP")
        for cached in (sandbox.bwrap_path, sandbox.probe, sandbox.overlay_works):
            cached.cache_clear()
    assert sandbox.available()


async def test_an_overlay_box_leaves_the_checkout_untouched(tmp_path):
    """Adversarial targets see a copy-on-write checkout: what one attempt writes, the next never sees."""
    work = checkout(tmp_path)
    for _ in range(2):
        box = sandbox.Box(work, Limits(timeout_s=30), mode="overlay")
        try:
            proc = box.spawn(["/bin/sh", "-c", "test ! -e dump.rdb && echo fresh > dump.rdb"], None)
            proc.wait(30)
            assert box.exit_code() == 0
        finally:
            box.close()
    assert not (work / "dump.rdb").exists()


async def test_a_cpu_cap_is_the_sandbox_cgroups(tmp_path):
    if not sandbox.cgroup_mode():
        pytest.skip("no writable cgroup on this machine: CPU seconds are capped by RLIMIT_CPU only")
    box = sandbox.Box(checkout(tmp_path), Limits(timeout_s=30, cpus=1), mode="bind")
    try:
        box.spawn(["/bin/sh", "-c", "sleep 5"], None)
        quotas = [(d / name).read_text().split()[0] for d in box.cgroup.dirs
                  for name in ("cpu.max", "cpu.cfs_quota_us") if (d / name).exists()]
        assert quotas == ["100000"]
        assert "1 CPU(s)" in sandbox.describe(Limits(cpus=1))
    finally:
        box.close()
    assert all(not d.exists() for d in box.cgroup.dirs)        # removed with the sandbox
