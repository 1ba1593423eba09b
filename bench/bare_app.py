"""The baseline for bench/ack.py: a bare slack-bolt app whose /backport only acks. Usage: bare_app.py PORT [inline]

With `inline` it runs its listener before answering (process_before_response=True, as ours does) instead of
Bolt's default of running it as a task and polling for the ack every 10 ms."""

import os
import sys

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

bolt = AsyncApp(client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
                signing_secret=os.environ["SLACK_SIGNING_SECRET"], process_before_response=sys.argv[2:] == ["inline"])


@bolt.command("/backport")
async def ack_only(ack):
    await ack(text="ok")


async def events(request):
    return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/slack/events", events)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
