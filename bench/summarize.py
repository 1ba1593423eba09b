"""Summarize benchmark: digest time and prompt tokens for PRs of 100, 1,000, 10,000 and 50,000 changed lines.

The model is the project's fake Anthropic server on loopback (it counts tokens as characters / 4 and answers in
the requested JSON shapes), so the figures are the bot's own work: building the digest, packing and counting
prompts. Prints whether any prompt exceeded the budget. Usage: python bench/summarize.py [--budget 32000]"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from anthropic import AsyncAnthropic  # noqa: E402

from core.llm import Gateway  # noqa: E402
from jobs import digest as digest_mod  # noqa: E402
from jobs.summarize import Source, Summarizer  # noqa: E402
from tests.fakes.anthropic import KEY, FakeAnthropic, text  # noqa: E402


def make_pr(lines: int, per_file: int = 200) -> list[digest_mod.FileChange]:
    changes = []
    for i in range(max(1, lines // per_file)):
        n = min(per_file, lines - i * per_file)
        body = "".join(f"+    value_{i}_{j} = compute_{j}(input, {j}); /* step {j} */\n" for j in range(n))
        changes.append(digest_mod.FileChange(path=f"src/area{i % 7}/file{i:04d}.c", additions=n,
                                             patch=f"@@ -1,1 +1,{n} @@ static int handler_{i}(void) {{\n" + body))
    return changes


def respond(body: dict):
    prompt = body["messages"][0]["content"]
    if "<notes>" in prompt or "<file path" not in prompt:
        return text(json.dumps({"summary": "Bench summary.", "areas": [], "review_first": []}))
    if '"notes"' in prompt.split("</file>")[-1]:
        paths = re.findall(r'<file path="([^"]+)">', prompt)
        return text(json.dumps({"notes": [{"file": p, "note": "changes"} for p in paths]}))
    return text(json.dumps({"summary": "Bench summary.", "areas": [], "review_first": []}))


async def main(budget: int) -> None:
    fake = await FakeAnthropic().start()
    fake.default = respond
    client = AsyncAnthropic(api_key=KEY, base_url=fake.url)

    async def audit(*args, **kwargs):
        return None

    print(f"summarize: budget {budget} input tokens per call")
    print(f"{'lines':>7} {'files':>6} {'digest ms':>10} {'calls':>6} {'max prompt tok':>15} {'read':>9} {'model ms':>9}")
    over = False
    try:
        for lines in (100, 1_000, 10_000, 50_000):
            changes = make_pr(lines)
            t = time.perf_counter()
            d = digest_mod.digest(changes)
            digest_mod.render(d)
            digest_ms = (time.perf_counter() - t) * 1000
            src = Source(ident="bench", label="bench", head="0" * 40, title="Bench PR", body="", commits=[],
                         changes=changes)
            s = Summarizer(Gateway(client, "claude-bench", 1024, audit), budget)
            t = time.perf_counter()
            result = await s.run(src, d)
            model_ms = (time.perf_counter() - t) * 1000
            biggest = max(s.prompt_tokens)
            over |= biggest > budget
            print(f"{lines:>7} {len(changes):>6} {digest_ms:>10.1f} {result.calls:>6} {biggest:>15} "
                  f"{len(result.read):>4}/{len(changes):<4} {model_ms:>9.0f}")
    finally:
        await client.close()
        await fake.stop()
    print(f"every prompt within the budget: {not over}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=32_000)
    asyncio.run(main(ap.parse_args().budget))
