"""What a job or command needs from a chat surface. Slack (core/slack.py) and the console (bot/console.py)
both implement it, so nothing else in the bot knows which one it is talking to."""

from __future__ import annotations

from typing import Protocol


class ChatError(Exception):
    """The chat service refused or could not be reached after retries."""


class CannotPost(ChatError):
    """The bot may not post in that conversation (a private channel it is not in, a DM between people)."""


NOT_POSTABLE = ("channel_not_found", "not_in_channel", "is_archived", "restricted_action", "cannot_dm_bot",
                "messages_tab_disabled")


class Chat(Protocol):
    async def post(self, channel: str, text: str, blocks: list | None = None, thread_ts: str | None = None) -> str:
        """Post a message (a thread reply when thread_ts is given); returns its ts."""

    async def update(self, channel: str, ts: str, text: str, blocks: list | None = None) -> None:
        """Edit a message in place."""

    async def delete(self, channel: str, ts: str) -> None:
        """Remove a message the bot posted."""

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only `user` sees."""

    async def permalink(self, channel: str, ts: str) -> str:
        """A link a person can follow to the message."""

    async def dm(self, user: str, text: str, blocks: list | None = None) -> str:
        """A direct message; returns its ts."""

    async def group_members(self, group: str) -> list[str]:
        """User IDs in a Slack user group."""

    async def find_user(self, name: str) -> str | None:
        """The user ID of a plain @name (handle or display name), or None."""

    async def publish_home(self, user: str, view: dict) -> None:
        """Show `view` as the person's App Home tab (nothing where there is no such tab)."""

    async def open_view(self, trigger_id: str, view: dict) -> None:
        """Open a modal form for the person whose action gave `trigger_id` (Slack only)."""
