"""`[access.<command>]` rules: who may run a command or subcommand, and where; the defaults are the commands'
own; a refusal says who may, and nothing is queued."""

from __future__ import annotations

import pytest

import commands
from core import config as config_mod
from tests.conftest import CHANNEL, MAINTAINER, config_dict

OUTSIDER = "UOUTSIDE1"
HELPER = "UHELPER01"


def test_every_access_name_is_a_command_or_subcommand():
    names = set()
    for c in commands.COMMANDS.values():
        names.add(c.name)
        names.update(f"{c.name} {s}" for s in c.subcommands)
    assert names == set(config_mod.ACCESS_NAMES)


@pytest.mark.parametrize("access, message", [
    ({"deploy": {"who": ["anyone"]}}, "access.deploy: not a command"),
    ({"backport": {"who": ["everyone"]}}, "access.backport.who"),
    ({"backport": {"channels": ["#general"]}}, "access.backport.channels"),
    ({"backport": {"who": "anyone"}}, "access.backport.who: expected a list"),
    ({"backport": {"whom": ["anyone"]}}, "access.backport.whom: unknown key"),
    ({"backport": ["anyone"]}, "access.backport: expected a table"),
])
def test_broken_access_rules_stop_start_up_naming_the_key(remote, access, message):
    data = config_dict(remote)
    data["access"] = access
    with pytest.raises(config_mod.ConfigError, match=message.replace(".", r"\.")):
        config_mod.parse(data)


async def slash(bot, command, text, user, channel=CHANNEL) -> str:
    _, body = await bot.slash(command, text, user=user, channel=channel)
    return body["text"]


async def test_defaults_are_todays_behaviour(make_bot, remote, slack):
    remote.commit("main", {"a": "1\n"}, "Initial")
    bot = await make_bot(config_dict(remote), worker=False)
    assert "for maintainers only" in await slash(bot, "/backport", "status", OUTSIDER)
    assert "for maintainers only" in await slash(bot, "/provenance", "PR#3", OUTSIDER)
    assert "Queued job" in await slash(bot, "/backport", "status", MAINTAINER)
    assert "Sorry" not in await slash(bot, "/summarize", "PR#3", OUTSIDER)       # anyone, as today


async def test_rules_allow_refuse_and_say_who_may(make_bot, remote, slack):
    remote.commit("main", {"a": "1\n"}, "Initial")
    slack.groups["SRELEASE1"] = [HELPER]
    data = config_dict(remote)
    data["access"] = {
        "backport status": {"who": ["anyone"]},                      # a subcommand opened to everyone
        "backport": {"who": ["maintainers", "SRELEASE1"], "channels": ["CRELEASE1"]},
        "summarize": {"who": ["maintainers", HELPER]},               # closed to outsiders
        "firstissue add": {"who": [HELPER]},
    }
    bot = await make_bot(data, worker=False)
    assert "Queued job" in await slash(bot, "/backport", "status", OUTSIDER)
    refusal = await slash(bot, "/backport", "1.0 abc1234", OUTSIDER, channel="CRELEASE1")
    assert "may be run by maintainers or members of <!subteam^SRELEASE1>, in <#CRELEASE1>" in refusal
    assert "[access.backport]" in refusal
    where = await slash(bot, "/backport", "1.0 abc1234", HELPER)              # the right person, wrong channel
    assert where.startswith("Sorry, /backport runs only in <#CRELEASE1>")
    assert "Queued job" in await slash(bot, "/backport", "1.0 abc1234", HELPER, channel="CRELEASE1")
    assert "may be run by maintainers or <@UHELPER01>" in await slash(bot, "/summarize", "PR#3", OUTSIDER)
    assert "Sorry" not in await slash(bot, "/summarize", "PR#3", HELPER)
    # A subcommand's rule lets a non-maintainer do what the command itself reserves for maintainers…
    assert "Sorry" not in await slash(bot, "/firstissue", "add #5 a small fix", HELPER)
    # …and only that subcommand.
    assert "Sorry, /firstissue is for maintainers" in await slash(bot, "/firstissue", "list", HELPER)
    # queued: the outsider's status, the helper's backport and summary (all on the low queue: not maintainers'),
    # and nothing for any refusal
    low = await bot.services.redis.zrange(f"saq:{bot.services.low_queue.name}:incomplete", 0, -1)
    assert len(low) == 3 and await bot.queued() == 0
