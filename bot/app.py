"""The web process: one aiohttp application composing the Slack app (Bolt, `POST /slack/events`), the
GitHub webhook (`POST /github/webhook`), `GET /healthz` and `GET /metrics`. In Socket Mode the Slack events
arrive over the socket instead, and the same HTTP routes still serve GitHub and monitoring."""

from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

import commands
from bot import webhook
from bot.services import Services

log = logging.getLogger(__name__)
SERVICES = web.AppKey("services", Services)


def build_bolt(services: Services, client) -> AsyncApp:
    env = services.config.env
    # Listeners run inline and ack as soon as they have their answer; what they do after the ack they start as
    # background tasks (commands.in_background). With process_before_response=False Bolt would instead run
    # each listener as a task and poll for its ack every 10 ms, adding up to 10 ms to every answer.
    app = AsyncApp(client=client, signing_secret=env.slack_signing_secret or None, process_before_response=True,
                   request_verification_enabled=bool(env.slack_signing_secret))
    commands.register(app, services)
    return app


def build_web(services: Services, bolt: AsyncApp | None) -> web.Application:
    app = web.Application(client_max_size=25 * 1024 * 1024)
    app[SERVICES] = services

    async def slack_events(request: web.Request) -> web.Response:
        if bolt is None:
            return web.Response(status=404, text="Slack HTTP mode is not enabled")
        services.metrics.inc("bot_slack_requests_total", "requests to /slack/events")
        try:
            bolt_request = await to_bolt_request(request)      # parses the body before any signature check
        except Exception:      # Bolt parses the body before checking anything: `payload=x`, `payload=0`…
            services.metrics.inc("bot_slack_refused_total", "Slack requests refused (signature)")
            return web.Response(status=400, text="malformed body")
        refusal = _refusal(services, bolt_request)
        if refusal:
            services.metrics.inc("bot_slack_refused_total", "Slack requests refused (signature)")
            return web.Response(status=401, text=refusal)
        resp = await bolt.async_dispatch(bolt_request)
        if resp.status == 401:
            services.metrics.inc("bot_slack_refused_total", "Slack requests refused (signature)")
        return await to_aiohttp_response(resp)

    async def healthz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(services.redis.ping(), 2)
        except Exception as exc:
            return web.Response(status=503, text=f"queue store unavailable: {exc.__class__.__name__}")
        return web.Response(text="ok")

    async def metrics(request: web.Request) -> web.Response:
        gauges = {}
        try:
            for kind in ("queued", "active", "incomplete"):
                gauges[f"bot_queue_{kind}_jobs"] = await asyncio.wait_for(services.queue.count(kind), 2)
            gauges["bot_queue_up"] = 1
        except Exception:
            gauges["bot_queue_up"] = 0
        return web.Response(text=services.metrics.render(gauges), content_type="text/plain")

    app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/github/webhook", webhook.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def _refusal(services: Services, request) -> str:
    """Why a Slack request is refused before Bolt sees it ('' when it is not): a timestamp header that is not a
    plain number (Bolt's own check would fail on it with a 500). Replays are refused where they would act: the
    request's signature goes with the jobs it queues, and the same signature never queues twice."""
    if not services.config.env.slack_signing_secret:
        return ""
    timestamp = request.headers.get("x-slack-request-timestamp", [""])[0]
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "missing or malformed signature headers"
    return ""


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
    # Everything loaded so far lives as long as the process: keep it out of the collector's full passes, which
    # otherwise walk every module and class now and then in the middle of a request.
    gc.collect()
    gc.freeze()
    if ready:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        if handler:
            await handler.close_async()
        await runner.cleanup()
