"""The web process: one aiohttp application composing the Slack app (Bolt, `POST /slack/events`), the
GitHub webhook (`POST /github/webhook`), `GET /healthz` and `GET /metrics`. In Socket Mode the Slack events
arrive over the socket instead, and the same HTTP routes still serve GitHub and monitoring."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import time

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

import commands
from bot import audit_page, webhook
from core.metrics import CONTENT_TYPE
from core.services import Services

log = logging.getLogger(__name__)
SERVICES = web.AppKey("services", Services)
SLACK_MAX_BODY = 1 << 20          # Slack's largest payloads (a block_actions with its message) are far smaller
GITHUB_MAX_BODY = 25 << 20        # GitHub caps webhook payloads at 25 MB
SLACK_SKEW_S = 300                # Slack's own window for a request's timestamp


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is (or claims to be) over `limit`: nothing more is read then."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


CHANNELS: dict[str, tuple[str, str]] = {}     # config key -> (channel, what the start-up check found)


async def check_channels(services: Services, client) -> dict[str, tuple[str, str]]:
    """At start-up: can the bot post in notify_channel and security_channel? Said in the log and in /healthz."""
    slack = services.config.slack
    for name, channel in (("notify_channel", slack.notify_channel), ("security_channel", slack.security_channel)):
        if not channel:
            continue
        try:
            resp = await client.conversations_info(channel=channel)
            member = resp.get("channel", {}).get("is_member")
            state = "ok (the bot is a member)" if member else "the bot is NOT a member: invite it"
        except Exception as exc:          # SlackApiError: channel_not_found for a private channel it is not in
            error = getattr(getattr(exc, "response", None), "get", lambda *_: None)("error") or exc.__class__.__name__
            state = f"cannot be read ({error}): invite the bot, or check the ID"
        CHANNELS[name] = (channel, state)
        (log.info if state.startswith("ok") else log.warning)("%s %s: %s", name, channel, state)
    return CHANNELS


def slack_signature_ok(secret: str, headers, body: bytes, now: float | None = None) -> bool:
    """Slack's v0 signature over the raw bytes, checked before anything parses them."""
    ts = headers.get("X-Slack-Request-Timestamp", "")
    sig = headers.get("X-Slack-Signature", "")
    if not (ts.isascii() and ts.isdecimal()) or len(ts) > 12 or not sig.isascii() or not sig.startswith("v0="):
        return False
    if abs((time.time() if now is None else now) - int(ts)) > SLACK_SKEW_S:
        return False
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


def build_bolt(services: Services, client) -> AsyncApp:
    env = services.config.env
    # Listeners run inline and ack as soon as they have their answer; what they do after the ack they start as
    # background tasks (commands.in_background). With process_before_response=False Bolt would instead run
    # each listener as a task and poll for its ack every 10 ms, adding up to 10 ms to every answer.
    # HTTP requests are verified on their raw bytes before Bolt sees them (build_web); Bolt's own check would
    # only repeat it. Socket Mode needs none.
    app = AsyncApp(client=client, signing_secret=env.slack_signing_secret or None, process_before_response=True,
                   request_verification_enabled=False)
    commands.register(app, services)
    return app


def build_web(services: Services, bolt: AsyncApp | None) -> web.Application:
    app = web.Application(client_max_size=GITHUB_MAX_BODY)
    app[SERVICES] = services
    secret = services.config.env.slack_signing_secret

    async def slack_events(request: web.Request) -> web.Response:
        if bolt is None:
            return web.Response(status=404, text="Slack HTTP mode is not enabled")
        services.metrics.slack_requests.inc()
        body = await read_body(request, SLACK_MAX_BODY)
        if body is None:
            services.metrics.slack_refused.labels(why="size").inc()
            return web.Response(status=413, text="body too large")
        # The signature is checked on the raw bytes first: nothing unsigned is parsed, however large or odd.
        if secret and not slack_signature_ok(secret, request.headers, body):
            services.metrics.slack_refused.labels(why="signature").inc()
            return web.Response(status=401, text="missing, stale or invalid signature")
        try:
            text = body.decode("utf-8")
            bolt_request = AsyncBoltRequest(body=text, query=request.query_string,
                                            headers={k.lower(): [v] for k, v in request.headers.items()})
        except Exception:      # Bolt parses the body as it builds the request: `payload=x`, `payload=0`…
            services.metrics.slack_refused.labels(why="body").inc()
            return web.Response(status=400, text="malformed body")
        resp = await bolt.async_dispatch(bolt_request)
        if resp.status == 401:
            services.metrics.slack_refused.labels(why="signature").inc()
        return await to_aiohttp_response(resp)

    async def healthz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(services.redis.ping(), 2)
        except Exception as exc:
            return web.Response(status=503, text=f"queue store unavailable: {exc.__class__.__name__}")
        lines = ["ok"] + [f"{name} {channel}: {state}" for name, (channel, state) in CHANNELS.items()]
        return web.Response(text="\n".join(lines))

    async def metrics(request: web.Request) -> web.Response:
        m = services.metrics
        try:
            for name, q in services.queues.items():
                for state in ("queued", "active", "incomplete"):
                    m.queue_jobs.labels(queue=name, state=state).set(await asyncio.wait_for(q.count(state), 2))
            m.queue_up.set(1)
        except Exception:
            m.queue_up.set(0)
        return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/github/webhook", webhook.make_handler(services))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/jobs/{job}", audit_page.make_handler(services))
    app.router.add_get("/metrics", metrics)
    return app


async def serve(services: Services, client, port: int, socket_mode: bool, ready: asyncio.Event | None = None,
                host: str = "0.0.0.0") -> None:
    """Run until cancelled."""
    bolt = build_bolt(services, client)
    web_app = build_web(services, None if socket_mode else bolt)
    runner = web.AppRunner(web_app, access_log=None)   # a line per request costs more than the request
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    handler = None
    if socket_mode:
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(bolt, services.config.env.slack_app_token)
        await handler.connect_async()
    log.info("listening on port %s (%s)", port, "socket mode" if socket_mode else "HTTP mode")
    checking = asyncio.create_task(check_channels(services, client))     # runs beside serving
    # Everything loaded so far lives as long as the process: keep it out of the collector's full passes, which
    # otherwise walk every module and class now and then in the middle of a request.
    gc.collect()
    gc.freeze()
    if ready:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        checking.cancel()
        if handler:
            await handler.close_async()
        await runner.cleanup()
