"""Fake Slack Web API (`/api/<method>`, form or JSON bodies, bearer token) plus a `response_url` sink.

Messages are kept per channel, so tests read parents and threads the way a person would see them."""

from __future__ import annotations

import itertools
import json

from aiohttp import WSMsgType, web

from tests.fakes.server import FakeServer

TOKEN = "xoxb-test-token-0000"
APP_TOKEN = "xapp-test-token-0000"


class FakeSlack(FakeServer):
    def __init__(self, groups: dict[str, list[str]] | None = None):
        super().__init__()
        self.groups = groups or {}
        self.users: dict[str, str] = {}   # user ID -> handle, for users.list
        self.messages: dict[str, dict] = {}        # ts -> message
        self.ephemerals: list[dict] = []
        self.responses: list[dict] = []            # posts to response_url
        self._ts = itertools.count(1)
        self.app.router.add_post("/api/{method}", self.api)
        self.app.router.add_get("/api/{method}", self.api)
        self.app.router.add_post("/respond/{id}", self.respond)
        self.app.router.add_get("/socket", self.socket)
        self.sockets: list[web.WebSocketResponse] = []
        self.socket_acks: list[dict] = []
        self.outside: set[str] = set()             # conversations the bot is not in: posting there fails
        self.not_member: set[str] = set()          # public channels it can see but was not invited to
        self.homes: dict[str, dict] = {}           # user -> the Home view last published
        self.views: list[dict] = []                # modals opened, newest last

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    async def respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.method == "GET":
            args = {}
        elif request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(await request.post())
        args.update({k: v for k, v in request.query.items()})
        self.calls.append((method, args))
        await self.maybe_hang(method)
        failure = self.take_failure(method)
        if failure is not None:
            return failure
        if method == "apps.connections.open":
            if request.headers.get("Authorization") != f"Bearer {APP_TOKEN}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        answer = handler(args)
        await self.maybe_linger(method, args)
        return web.json_response(answer)

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then relay envelopes that tests send with `send_envelope`."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(msg.data))
        return ws

    async def send_envelope(self, kind: str, payload: dict, envelope_id: str) -> dict:
        """Send one envelope over the open socket and wait for the app's ack."""
        await self.wait_for(lambda: self.sockets, what="a socket mode connection")
        await self.sockets[-1].send_json({"envelope_id": envelope_id, "type": kind, "payload": payload,
                                          "accepts_response_payload": True, "retry_attempt": 0})
        return await self.wait_for(lambda: next((a for a in self.socket_acks if a.get("envelope_id") == envelope_id),
                                                None), what="the envelope's ack")

    def _blocks(self, args):
        blocks = args.get("blocks")
        return json.loads(blocks) if isinstance(blocks, str) else (blocks or [])

    def m_auth_test(self, args):
        return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "bot", "team_id": "T0001",
                "user_id": "UBOT", "bot_id": "BBOT"}

    def _too_big(self, args) -> str:
        """Slack's own limits: 40,000 characters of text, 50 blocks, 3,000 characters a section's text."""
        if len(args.get("text") or "") > 40_000:
            return "msg_too_long"
        blocks = self._blocks(args)
        if len(blocks) > 50:
            return "invalid_blocks"
        for b in blocks:
            if b.get("type") == "section" and len(b.get("text", {}).get("text", "")) > 3000:
                return "invalid_blocks"
        return ""

    def m_chat_postMessage(self, args):
        if args.get("channel") in self.outside:
            return {"ok": False, "error": "channel_not_found"}
        if self._too_big(args):
            return {"ok": False, "error": self._too_big(args)}
        ts = f"{1700000000 + next(self._ts)}.000100"
        msg = {"ts": ts, "channel": args["channel"], "text": args.get("text", ""), "blocks": self._blocks(args),
               "thread_ts": args.get("thread_ts"), "edits": 0}
        self.messages[ts] = msg
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": msg}

    def m_chat_update(self, args):
        msg = self.messages.get(args["ts"])
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if self._too_big(args):
            return {"ok": False, "error": self._too_big(args)}
        msg.update(text=args.get("text", ""), blocks=self._blocks(args), edits=msg["edits"] + 1)
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def m_chat_delete(self, args):
        self.messages.pop(args["ts"], None)
        return {"ok": True}

    def m_chat_postEphemeral(self, args):
        self.ephemerals.append(args)
        return {"ok": True, "message_ts": "1.1"}

    def _view_problem(self, view, limit: int) -> str:
        """Slack's checks of a view: a JSON object of a known type, at most `limit` blocks, sections within 3,000
        characters, buttons with a text of at most 75 and a value of at most 2,000 characters."""
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                return "invalid_arguments"
        if not isinstance(view, dict) or view.get("type") not in ("home", "modal"):
            return "invalid_arguments"
        blocks = view.get("blocks") or []
        if len(blocks) > limit:
            return "invalid_arguments"
        for b in blocks:
            if b.get("type") == "section" and len(b.get("text", {}).get("text", "")) > 3000:
                return "invalid_arguments"
            for e in b.get("elements", []) if b.get("type") == "actions" else []:
                if len(e.get("text", {}).get("text", "")) > 75 or len(e.get("value", "")) > 2000:
                    return "invalid_arguments"
        return ""

    def m_views_publish(self, args):
        view = json.loads(args["view"]) if isinstance(args.get("view"), str) else args.get("view")
        if not args.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        problem = self._view_problem(view, 100)
        if problem or view.get("type") != "home":
            return {"ok": False, "error": problem or "invalid_arguments"}
        self.homes[args["user_id"]] = view
        return {"ok": True, "view": dict(view, id="V0001")}

    def m_views_open(self, args):
        view = json.loads(args["view"]) if isinstance(args.get("view"), str) else args.get("view")
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        problem = self._view_problem(view, 100)
        if problem or view.get("type") != "modal" or not view.get("title"):
            return {"ok": False, "error": problem or "invalid_arguments"}
        self.views.append(view)
        return {"ok": True, "view": dict(view, id=f"V{len(self.views):04d}")}

    def home_text(self, user: str) -> str:
        out = []
        for b in (self.homes.get(user) or {}).get("blocks", []):
            if b.get("type") == "section":
                out.append(b["text"]["text"])
            for e in b.get("elements", []) if b.get("type") in ("actions", "context") else []:
                out.append(e.get("text", {}).get("text", "") if isinstance(e.get("text"), dict) else e.get("text", ""))
        return "\n".join(out)

    def m_conversations_info(self, args):
        channel = args.get("channel", "")
        if channel in self.outside:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": channel, "is_member": channel not in self.not_member}}

    def m_chat_getPermalink(self, args):
        return {"ok": True, "permalink": f"https://test.slack.com/archives/{args['channel']}/p{args['message_ts']}"}

    def m_conversations_open(self, args):
        return {"ok": True, "channel": {"id": "D" + args["users"].lstrip("UW")}}

    def m_users_list(self, args):
        members = [{"id": uid, "name": name, "profile": {"display_name": name}} for uid, name in self.users.items()]
        return {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}

    def m_usergroups_users_list(self, args):
        group = args.get("usergroup")
        if group not in self.groups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.groups[group]}

    # What a person sees ----------------------------------------------------------------------------
    def parents(self, channel: str | None = None) -> list[dict]:
        return [m for m in self.messages.values() if not m["thread_ts"] and (channel is None or m["channel"] == channel)]

    def thread(self, parent_ts: str) -> list[dict]:
        return [m for m in self.messages.values() if m["thread_ts"] == parent_ts]

    def thread_text(self, parent_ts: str) -> str:
        out = []
        for m in self.thread(parent_ts):
            out.append(m["text"])
            for b in m["blocks"]:
                if b.get("type") == "section":
                    out.append(b["text"]["text"])
        return "\n".join(out)
