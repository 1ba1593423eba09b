"""Prometheus counters kept in-process, and the text exposition served at `GET /metrics`."""

from __future__ import annotations

from collections import defaultdict


class Metrics:
    def __init__(self):
        self.counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self.help: dict[str, str] = {}

    def inc(self, name: str, help_text: str = "", value: float = 1, **labels: str) -> None:
        self.help.setdefault(name, help_text)
        self.counters[name][tuple(sorted(labels.items()))] += value

    def render(self, gauges: dict[str, float] | None = None) -> str:
        lines = []
        for name, series in sorted(self.counters.items()):
            lines.append(f"# HELP {name} {self.help.get(name) or name}")
            lines.append(f"# TYPE {name} counter")
            for labels, value in sorted(series.items()):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
        for name, value in sorted((gauges or {}).items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {value:g}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
