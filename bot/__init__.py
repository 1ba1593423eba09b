"""The bot's app and its shared parts: config, store, chat (Slack and console), GitHub, LLM, rendering."""
