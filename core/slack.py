"""The Slack Web API side: one AsyncWebClient (base URL from `SLACK_API_URL`, 429 and 5xx retried with
backoff, bounded) and `SlackChat`, the Chat implementation jobs and commands post through."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from core.chat import NOT_POSTABLE, CannotPost, ChatError
from core.config import Env


def web_client(env: Env, timeout: int = 15) -> AsyncWebClient:
    """Call from a running event loop: the client keeps one HTTP session (slack_sdk otherwise opens a session,
    and a connection, for every call)."""
    import asyncio

    import aiohttp

    session = None
    try:
        asyncio.get_running_loop()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    except RuntimeError:
        pass
    client = AsyncWebClient(token=env.slack_bot_token or None, base_url=env.slack_api_url, timeout=timeout,
                            session=session)
    client.retry_handlers.extend([
        AsyncRateLimitErrorRetryHandler(max_retry_count=4),
        AsyncServerErrorRetryHandler(max_retry_count=3),
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
    ])
    return client


class SlackChat:
    """Chat over the Slack Web API. Every failure becomes a ChatError naming the method."""

    def __init__(self, client: AsyncWebClient):
        self.client = client

    async def close(self) -> None:
        if self.client.session is not None and not self.client.session.closed:
            await self.client.session.close()

    async def _call(self, method: str, **kwargs):
        try:
            return await self.client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            error = _error(exc)
            if method == "chat.postMessage" and error in NOT_POSTABLE:
                raise CannotPost(f"Slack {method}: {error}") from exc
            raise ChatError(f"Slack {method}: {error}") from exc
        except (SlackClientError, OSError, TimeoutError) as exc:
            raise ChatError(f"Slack {method}: {exc.__class__.__name__}: {exc}") from exc

    async def post(self, channel, text, blocks=None, thread_ts=None) -> str:
        args = {"channel": channel, "text": text, "unfurl_links": False}
        if blocks:
            args["blocks"] = blocks
        if thread_ts:
            args["thread_ts"] = thread_ts
        resp = await self._call("chat.postMessage", **args)
        return resp["ts"]

    async def update(self, channel, ts, text, blocks=None) -> None:
        await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks or [])

    async def respond(self, response_url: str, text: str) -> None:
        """An ephemeral answer through a command's response_url (it works in any conversation, for 30 minutes)."""
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        try:
            resp = await AsyncWebhookClient(response_url, timeout=10).send(text=text, response_type="ephemeral",
                                                                            replace_original=False)
        except (SlackClientError, OSError, TimeoutError) as exc:
            raise ChatError(f"Slack response_url: {exc.__class__.__name__}") from exc
        if resp.status_code >= 300:
            raise ChatError(f"Slack response_url: HTTP {resp.status_code}")

    async def delete(self, channel, ts) -> None:
        await self._call("chat.delete", channel=channel, ts=ts)

    async def ephemeral(self, channel, user, text) -> None:
        await self._call("chat.postEphemeral", channel=channel, user=user, text=text)

    async def publish_home(self, user, view) -> None:
        await self._call("views.publish", user_id=user, view=view)

    async def open_view(self, trigger_id: str, view: dict) -> None:
        await self._call("views.open", trigger_id=trigger_id, view=view)

    async def permalink(self, channel, ts) -> str:
        try:
            resp = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
            return resp["permalink"]
        except (SlackApiError, SlackClientError, OSError):
            return f"(thread {ts} in <#{channel}>)"

    async def dm(self, user, text, blocks=None) -> str:
        resp = await self._call("conversations.open", users=user)
        return await self.post(resp["channel"]["id"], text, blocks)

    async def find_user(self, name) -> str | None:
        name = name.lower()
        cursor = None
        for _ in range(50):   # at most 50 pages of 200 people
            resp = await self._call("users.list", limit=200, **({"cursor": cursor} if cursor else {}))
            for m in resp.get("members", []):
                profile = m.get("profile") or {}
                names = {m.get("name", "").lower(), profile.get("display_name", "").lower()}
                if name in names and not m.get("deleted"):
                    return m["id"]
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def group_members(self, group) -> list[str]:
        try:
            resp = await self.client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            raise ChatError(f"Slack usergroups.users.list: {_error(exc)}") from exc
        except (SlackClientError, OSError) as exc:
            raise ChatError(f"Slack usergroups.users.list: {exc}") from exc
        return list(resp.get("users", []))


def _error(exc: SlackApiError) -> str:
    data = exc.response.data
    if isinstance(data, dict):
        return str(data.get("error", exc.response.status_code))
    return f"HTTP {exc.response.status_code}"
