"""The foundation: config, store and queue, chat (Slack and its renderer), GitHub, the model gateway, the
sandbox, audit, metrics and logs. Nothing here imports commands/, jobs/ or bot/."""
