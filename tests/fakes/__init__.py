"""Fake Slack, GitHub and Anthropic servers on loopback, speaking their real wire formats, so the real SDK
clients can be pointed at them through their base URLs."""
