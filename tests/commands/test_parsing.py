"""The argument forms of ../shared/CONTRACT.md, parsed without touching the network."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import config as config_mod
from commands import backport
from commands.base import PRRef, RangeRef, Usage, parse_commit_or_pr, parse_person, parse_pr, parse_releases

CFG = config_mod.parse({"repos": [{"github": "valkey-io/valkey"}, {"github": "valkey-io/valkey-doc"}]})


@pytest.mark.parametrize("text, expected", [
    ("PR#1234", PRRef("valkey-io/valkey", 1234)),
    ("pr#7", PRRef("valkey-io/valkey", 7)),
    ("#1234", PRRef("valkey-io/valkey", 1234)),
    ("1234", PRRef("valkey-io/valkey", 1234)),
    ("valkey-io/valkey-doc#12", PRRef("valkey-io/valkey-doc", 12)),
    ("https://github.com/valkey-io/valkey/pull/1234", PRRef("valkey-io/valkey", 1234)),
    ("<https://github.com/valkey-io/valkey/pull/1234/files>", PRRef("valkey-io/valkey", 1234)),
    ("9.0..unstable", RangeRef("valkey-io/valkey", "9.0", "unstable")),
    ("abc123f^..abc123f", RangeRef("valkey-io/valkey", "abc123f^", "abc123f")),
    ("v8.0.1~3..v8.0.1", RangeRef("valkey-io/valkey", "v8.0.1~3", "v8.0.1")),
    ("unstable~2^2..unstable^", RangeRef("valkey-io/valkey", "unstable~2^2", "unstable^")),
])
def test_pr_forms(text, expected):
    assert parse_pr(CFG, text) == expected


@pytest.mark.parametrize("text", ["", "PR#", "other/repo#1", "../..", "a..", "--upload-pack=x..y", "#12a",
                                  "https://evil.example/x", "1.0..$(id)", "a...b", "a@{1}..b", "a^{tree}..b",
                                  "a:README..b", "^a..b", "a~x..b", "a~9999999..b", "v1.lock..b"])
def test_bad_pr_forms(text):
    with pytest.raises(Usage):
        parse_pr(CFG, text)


def test_backport_refs_shas_win_over_numbers():
    assert parse_commit_or_pr(CFG, "9139610615") == "9139610615"
    assert parse_commit_or_pr(CFG, "ABCDEF1") == "abcdef1"
    assert parse_commit_or_pr(CFG, "#12") == PRRef("valkey-io/valkey", 12)
    for bad in ("12", "--upload-pack=evil", "abc", "g" * 10, "a" * 41):
        with pytest.raises(Usage):
            parse_commit_or_pr(CFG, bad)


def test_releases_and_order():
    assert parse_releases("9.1,8.1,9.1") == ["9.1", "8.1"]
    with pytest.raises(Usage):
        parse_releases("9.1,--force")
    assert sorted(["8.1", "9.0", "9.1", "unstable-x"], key=backport.release_order) == ["9.1", "9.0", "8.1",
                                                                                       "unstable-x"]


def test_people():
    assert parse_person("<@U123ABC|newcomer>") == ("U123ABC", "newcomer")
    assert parse_person("<@W123ABC>") == ("W123ABC", "")
    assert parse_person("@newcomer") == ("", "newcomer")
    for bad in ("newcomer", "<@nope>", "@", "<!channel>"):
        with pytest.raises(Usage):
            parse_person(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parsers_never_crash_on_any_text(text):
    for parser in (lambda t: parse_pr(CFG, t), lambda t: parse_commit_or_pr(CFG, t), parse_releases, parse_person):
        try:
            parser(text)
        except Usage as exc:
            assert "\n" not in str(exc)
