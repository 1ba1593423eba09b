"""`python -m bot`: the Slack app (HTTP on `PORT`, or Socket Mode with `SLACK_APP_TOKEN`) with the GitHub
webhook, or, with no Slack tokens at all, the local console."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot import app, console, demo
from core import config as config_mod
from core import slack
from core.logs import setup as setup_logging
from core.services import Services
from core.store import require_store, resolve


def main() -> None:
    try:
        cfg = config_mod.load(allow_demo=True)
        config_mod.check_web(cfg.env)
    except config_mod.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    console = cfg.env.slack_mode == "console"
    setup_logging(cfg.env.secrets(), level=logging.WARNING if console else logging.INFO)
    # SAQ logs every enqueue and finish at INFO; in the console and the web process that is noise.
    logging.getLogger("saq").setLevel(logging.ERROR if console else logging.WARNING)
    if cfg.demo and not console:
        print("config error: bot.toml: config file not found (set BOT_CONFIG, or copy bot.example.toml)",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        url, server = resolve(cfg.env)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1)
    require_store(url, cfg.queue.allow_eviction, server)
    try:
        if console:
            asyncio.run(_console(cfg, url))
        else:
            asyncio.run(_web(cfg, url))
    except KeyboardInterrupt:
        pass
    finally:
        if server:
            server.stop()


async def _console(cfg, url: str) -> None:
    banner = "maintainer-bot console (no Slack tokens set). Type /help for the commands; Ctrl-D quits."
    if cfg.demo:
        cfg, info = demo.config(cfg, cfg.env.data_dir)
        banner += (f"\nNo bot.toml, so this is the offline demo: repo demo/calc at {info['remote']}, release 1.0 → "
                   f"branch release/1.0.\nTry:  /backport 1.0 {info['fix'][:10]}     (a clean backport)\n"
                   f"      /backport 1.0 {info['conflict'][:10]}     (a conflict that needs a person)\n"
                   f"      /summarize 1.0..main         (what changed since the release, from the diff)")
    await console.run(cfg, url, banner=banner)


async def _web(cfg, url: str) -> None:
    client = slack.web_client(cfg.env)
    services = Services.build(cfg, url, {"slack": slack.SlackChat(client)})
    try:
        await app.serve(services, client, cfg.env.port, socket_mode=cfg.env.slack_mode == "socket")
    finally:
        await services.close()


if __name__ == "__main__":
    main()
