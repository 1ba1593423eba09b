"""Each job's pure `check(proposal) -> verdict`, tried on tables of proposals the way a careless or hostile model
would make them: no network, no git, no store; milliseconds."""

from __future__ import annotations

import pytest

from core.llm import Answer
from jobs.adversarial import BATCH, MAX_ARG, check_attacks
from jobs.provenance.job import check_second_look
from jobs.resolve import LONG_LINE, Hunk, Resolution, check, check_fix, check_fix_size, norm
from jobs.summarize import ModelResult, check_notes
from jobs.summarize import check as check_summary

# ------------------------------------------------------------------------------------------------ resolve

H1 = Hunk("h1", "src/a.c", "src/a.c", "@@ -10 +10 @@ int f()", ["    return limit(x);"], ["    return x;"])
H2 = Hunk("h2", "src/b.c", "src/b.c", "@@ -3 +3 @@", ["#define MAX 64"], [])


def lines(*texts: str) -> list[str]:
    """A file as the checker holds it: lines with whitespace ignored (resolution_of reads them through norm)."""
    return [norm(t) for t in texts]


BRANCH = {"src/a.c": lines("int f() {", "return x;", "}"), "src/b.c": lines("#include <x.h>")}
DONE = {"src/a.c": lines("int f() {", "return limit(x);", "}"), "src/b.c": lines("#include <x.h>", "#define MAX 64")}


def resolution(**over) -> Resolution:
    base = dict(hunks=[H1, H2], not_applicable={}, result=dict(DONE), branch=dict(BRANCH),
                changed=["src/a.c", "src/b.c"], allowed={"src/a.c", "src/b.c"}, original_size=(3, 60),
                result_size=(3, 60))
    base.update(over)
    return Resolution(**base)


@pytest.mark.parametrize("name, res, complaint", [
    ("the whole change, nothing else", resolution(), ""),
    ("conflict markers left", resolution(marked=["src/a.c"]), "conflict markers remain in src/a.c"),
    ("markers, and an untouched file edited", resolution(marked=["src/a.c"], untouched_edited=["README"]),
     "these files the cherry-pick does not touch were edited: README"),
    ("nothing changed on the branch", resolution(unchanged=True), "changes nothing on the branch"),
    ("a hunk left out", resolution(result={**DONE, "src/b.c": lines("#include <x.h>")}), "missing 1 hunk(s)"),
    ("a hunk whose line was already there once is not counted twice",
     resolution(branch={**BRANCH, "src/b.c": lines("#define MAX 64")}, result={**DONE, "src/b.c": lines("#define MAX 64")}),
     "missing 1 hunk(s)"),
    ("a hunk declared not applicable, with a reason", resolution(
        not_applicable={"h2": "the branch has no MAX"}, result={**DONE, "src/b.c": lines("#include <x.h>")}), ""),
    ("a hunk carried into another changed file",
     resolution(result={"src/a.c": DONE["src/a.c"], "src/b.c": lines("#include <x.h>"), "src/c.c": lines("#define MAX 64")},
                changed=["src/a.c", "src/c.c"], allowed={"src/a.c", "src/b.c"}), ""),
    ("a file outside the pick changed, carrying nothing",
     resolution(changed=["src/a.c", "src/b.c", "Makefile"], result={**DONE, "Makefile": lines("all:")}),
     "files the cherry-pick does not touch were changed without carrying any original hunk: Makefile"),
    ("far larger than the original", resolution(result_size=(400, 9000)), "far more than the original's"),
    ("an absurd line the model wrote", resolution(written=[{"path": "src/a.c", "line": "x" * (LONG_LINE + 1)}]),
     "the model wrote a line of"),
])
def test_the_resolution_checker(name, res, complaint):
    verdict = check(res)
    if complaint:
        assert complaint in verdict.complaint, name
    else:
        assert verdict.complaint == "", (name, verdict.complaint)


def test_lines_the_model_wrote_are_listed_for_review():
    written = [{"path": "src/a.c", "line": "    /* a comment of its own */"}]
    assert check(resolution(written=written)).model_lines == written


def test_whitespace_alone_does_not_hide_a_hunk():
    """`result` and `branch` hold normalised lines (resolution_of reads them through norm): a hunk re-indented
    by the model is still the hunk."""
    assert norm("    return   limit( x );") == norm("return limit(x);")
    res = resolution(result={**DONE, "src/a.c": lines("int  f() {", "\treturn limit(x) ;", "}")})
    assert check(res).complaint == ""


@pytest.mark.parametrize("before, after, complaint", [
    ({"a.c": "x"}, {"a.c": "y"}, ""),
    ({"a.c": "x"}, {"a.c": "x"}, "Claude changed nothing"),
    ({"a.c": "x"}, {"a.c": "y", "b.c": "z"}, "Claude changed files the backport does not touch: b.c"),
    ({"a.c": "x"}, {"a.c": "<<<<<<< ours\ny\n=======\nz\n>>>>>>> theirs\n"}, "conflict markers in a.c"),
])
def test_the_test_fix_checker(before, after, complaint):
    assert check_fix(before, after) == complaint


def test_a_fix_far_larger_than_the_backport_is_refused():
    assert check_fix_size(20, 10) == "" and "far larger" in check_fix_size(41, 10)


# ------------------------------------------------------------------------------------------------ summarize

KNOWN = {"src/parser.c", "tests/parser.tcl", "deps/vendored.c"}


def summary(data=None, problem="", read=("src/parser.c", "tests/parser.tcl")) -> ModelResult:
    return check_summary(ModelResult(read=list(read)), Answer(data, "raw", problem), KNOWN)


def test_a_summary_naming_only_read_files_stands_whole():
    r = summary({"summary": "Limits bulks in parser.c.", "areas": [{"area": "src", "points": ["p"],
                                                                     "files": ["src/parser.c"]}],
                 "review_first": [{"file": "tests/parser.tcl", "why": "new test"}]})
    assert r.data["summary"] and r.data["areas"][0]["files"] == ["src/parser.c"] and r.data["review_first"]
    assert r.dropped_unknown == r.dropped_unread == 0


@pytest.mark.parametrize("data, field, unknown, unread", [
    ({"summary": "s", "areas": [{"area": "x", "points": [], "files": ["src/invented.c"]}]}, "areas", 1, 0),
    ({"summary": "s", "areas": [{"area": "x", "points": [], "files": ["deps/vendored.c"]}]}, "areas", 0, 1),
    ({"summary": "s", "review_first": [{"file": "/etc/passwd", "why": "x"}]}, "review_first", 1, 0),
    ({"summary": "Touches src/invented.c heavily."}, "summary", 1, 0),
    ({"summary": "s", "areas": [{"area": "x", "points": ["See lib/other.c"], "files": []}]}, "areas", 1, 0),
])
def test_claims_about_files_not_in_the_change_or_not_read_are_dropped_and_counted(data, field, unknown, unread):
    r = summary(data)
    assert (r.dropped_unknown, r.dropped_unread) == (unknown, unread)
    assert not r.data[field]


def test_an_answer_that_is_not_the_json_asked_for_is_an_error_not_a_summary():
    r = summary(None, problem="summary: '' does not match '\\\\S'")
    assert r.data is None and "not the JSON asked for" in r.error and r.raw == "raw"


def test_chunk_notes_must_name_a_file_of_the_chunk():
    kept, dropped = check_notes({"notes": [{"file": "a.c", "note": "n"}, {"file": "z.c", "note": "n"},
                                           {"file": "a.c", "note": 3}, "junk"]}, {"a.c"})
    assert kept == [{"file": "a.c", "note": "n"}] and dropped == 3


# ------------------------------------------------------------------------------------------------ adversarial

@pytest.mark.parametrize("data, kept, refused", [
    ({"attacks": [{"commands": [["SET", "k", "v"], ["GET", "k"]]}]}, 1, 0),
    ({"attacks": [{"commands": "SET k v"}]}, 0, 1),                        # not a list of commands
    ({"attacks": [{"commands": [["SET", "k", 5]]}]}, 0, 1),                # not all strings
    ({"attacks": [{"commands": [["SUBSCRIBE", "ch"]]}]}, 0, 1),            # blocks by design
    ({"attacks": [{"commands": [["SET", "k", "v" * (MAX_ARG + 1)]]}]}, 0, 1),
    ({"attacks": [{"commands": [["PING"]] * 21}]}, 0, 1),                  # too many commands
    ({"attacks": "all of them"}, 0, 0),
    ({"attacks": [{"commands": [["PING"]]}] * (BATCH + 5)}, BATCH, 0),    # at most a batch
    ([], 0, 0),
])
def test_proposed_attacks_run_only_when_the_harness_could_judge_them(data, kept, refused):
    scripts, n_refused = check_attacks(data)
    assert (len(scripts), n_refused) == (kept, refused)


# ------------------------------------------------------------------------------------------------ provenance

def test_the_second_look_is_advice_in_the_shape_asked_for_or_nothing():
    ok = Answer({"assessment": "trivial", "why": "boilerplate"}, "raw")
    assert check_second_look(ok) == "trivial — boilerplate"
    assert check_second_look(Answer(None, "I think it's fine", "not JSON")) == \
        "the model's answer was not in the expected shape"
