"""Who may run maintainer commands: users listed in `[slack] maintainers`, or members of user groups listed
there (resolved through the Slack API, cached for five minutes); and whether a person is in an access rule's
`who` (`[access.<command>]`)."""

from __future__ import annotations

import logging
import time

from core.chat import Chat, ChatError

log = logging.getLogger(__name__)

CONSOLE_USER = "UCONSOLE"  # the person at the local console is the operator, a maintainer there and only there


class Authorizer:
    def __init__(self, maintainers: tuple[str, ...], chat: Chat | None, cache_s: float = 300, *,
                 console: bool = False):
        self.console = console          # True only in the local console process
        self.users = {m for m in maintainers if not m.startswith("S")}
        self.groups = [m for m in maintainers if m.startswith("S")]
        self.chat = chat
        self.cache_s = cache_s
        self._members: dict[str, tuple[float, set[str]]] = {}

    async def is_maintainer(self, user: str) -> bool:
        if user == CONSOLE_USER:
            return self.console
        if user in self.users:
            return True
        for group in self.groups:
            if user in await self._group(group):
                return True
        return False

    async def allows(self, user: str, who: tuple[str, ...], maintainer: bool) -> bool:
        """Whether `user` is one of `who` (an access rule: user IDs, user groups, "maintainers", "anyone")."""
        for entry in who:
            if entry == "anyone" or (entry == "maintainers" and maintainer) or entry == user:
                return True
            if entry.startswith("S") and user in await self._group(entry):
                return True
        return False

    async def _group(self, group: str) -> set[str]:
        cached = self._members.get(group)
        if cached and time.monotonic() - cached[0] < self.cache_s:
            return cached[1]
        if self.chat is None:
            return set()
        try:
            members = set(await self.chat.group_members(group))
        except ChatError as exc:
            log.warning("cannot resolve user group %s: %s", group, exc)
            return cached[1] if cached else set()  # a stale answer beats locking maintainers out
        self._members[group] = (time.monotonic(), members)
        return members


def describe_rule(who: tuple[str, ...], channels: tuple[str, ...]) -> str:
    """Who may, and where, in words for a refusal: "maintainers or <@U1> or members of <!subteam^S1>, in <#C1>"."""
    names = []
    for entry in who:
        if entry in ("maintainers", "anyone"):
            names.append(entry)
        elif entry.startswith("S"):
            names.append(f"members of <!subteam^{entry}>")
        else:
            names.append(f"<@{entry}>")
    where = (", in " + " or ".join(f"<#{c}>" for c in channels)) if channels else ""
    return " or ".join(names) + where
