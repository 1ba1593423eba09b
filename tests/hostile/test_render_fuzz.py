"""Hostile names through every renderer that shows them in Slack: file names that git accepts (a backtick, then
`<!channel>`, `<@U…>`, `<mailto:…|Approve backport>`), symbols, areas, branch names, titles, build output and
model replies. Whatever comes in, no live mention, channel ping or link leaves (property-based, hypothesis)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core import render
from jobs import digest
from jobs import provenance
from jobs.summarize import ModelResult, render_result

LIVE = ("<!", "<@", "<#", "<http", "<mailto", "<tel")
HOSTILE = st.sampled_from([
    "src/a`<!channel>`.c", "x` <@U0123456> `y", "<mailto:a@b.c|Approve backport>", "<!here|here>", "<#C0123>",
    "&lt;!channel&gt;", "<https://evil.example|click>", "@channel", "a\nb<!everyone>", "`", "```", "<", ">", "&",
])
NAMES = st.one_of(HOSTILE, st.text(max_size=40), st.lists(HOSTILE, min_size=1, max_size=3).map("".join))


def assert_inert(text: str) -> None:
    for live in LIVE:
        assert live not in text, (live, text)
    for ping in ("@channel", "@here", "@everyone"):
        assert ping not in text, (ping, text)


@settings(max_examples=150, deadline=None)
@given(paths=st.lists(NAMES, min_size=1, max_size=6), symbol=NAMES)
def test_digest_lines_stay_inert(paths, symbol):
    changes = [digest.FileChange(path=p or "x", additions=1, patch=f"@@ -1 +1 @@ int {symbol}(void)\n+x\n")
               for p in paths]
    for section in digest.render(digest.digest(changes)):
        assert_inert(section)


@settings(max_examples=150, deadline=None)
@given(reason=NAMES, files=st.lists(NAMES, max_size=5), tail=NAMES)
def test_escalations_stay_inert(reason, files, tail):
    text, blocks = render.escalation_blocks("bp-1", render.Escalation(stage="pick", reason=reason, files=files,
                                                                       log_tail=tail), maintainers=())
    assert_inert(text)
    for block in blocks:
        if block["type"] == "section":
            assert_inert(block["text"]["text"])


@settings(max_examples=100, deadline=None)
@given(file=NAMES, detail=NAMES, advice=NAMES)
def test_provenance_evidence_stays_inert(file, detail, advice):
    finding = provenance.Finding("a" * 40, "b" * 40, "hunk", 0.9, [file, "ok.c"], detail=detail, advice=advice)
    assert_inert(provenance.finding_text(finding, None, None))


@settings(max_examples=100, deadline=None)
@given(summary=NAMES, file=NAMES, area=NAMES)
def test_summaries_stay_inert(summary, file, area):
    result = ModelResult(data={"summary": summary, "areas": [{"area": area, "points": [summary], "files": [file]}],
                               "review_first": [{"file": file, "why": summary}]})
    for text in render_result(result):
        assert_inert(text)


@settings(max_examples=100, deadline=None)
@given(summary=NAMES, detail=NAMES)
def test_parent_messages_stay_inert_but_keep_the_requester(summary, detail):
    """The summary a command builds may name a person (`first issue for <@U…>`); no other markup survives."""
    text = render.parent_text("bp-1", summary, "UMAINT01", "failed", detail)
    assert text.count("<@UMAINT01>") >= 1
    assert_inert(re.sub(r"<@[UW][A-Z0-9]+>", "", text))


def test_a_backtick_cannot_close_a_code_span():
    shown = render.lit("src/a`<!channel>`.c")
    assert shown.count("`") == 2 and "<!channel>" not in shown
    assert render.inert(render.inert("a & <b>")) == render.inert("a & <b>")     # escaping twice changes nothing


def test_a_link_from_an_api_answer_is_linked_only_when_it_is_a_plain_http_url():
    from core import render

    assert render.link("https://github.com/a/b/runs/7", "the check run") == "<https://github.com/a/b/runs/7|the check run>"
    for url in ("javascript:alert(1)", "https://x|<!channel>", "https://x> <!here", "https://a b", ""):
        out = render.link(url, "the <!channel> run")
        assert "<!" not in out and "<http" not in out, out
