"""The offline demo: with no bot.toml, the console builds a small calculator repository (a bare "remote"
under `BOT_DATA_DIR/demo`) with a release branch, a fix to backport cleanly, and a change that conflicts, so
the first command a newcomer types does something real."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pygit2

from core.config import Config, RepoConfig

CALC_V1 = '''"""A tiny calculator."""


def add(a, b):
    return a + b


def sub(a, b):
    return b - a


def neg(a):
    """The number with its sign flipped."""
    return -a
'''

TEST_V1 = '''import unittest

from calc import add


class AddTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)
'''

MUL = '''

def mul(a, b):
    return a * b
'''

MUL_TEST = '''import unittest

from calc import mul


class MulTest(unittest.TestCase):
    def test_mul(self):
        self.assertEqual(mul(2, 3), 6)
'''

SUB_TEST = '''import unittest

from calc import sub


class SubTest(unittest.TestCase):
    def test_sub(self):
        self.assertEqual(sub(5, 3), 2)
'''


def _sig(t: int) -> pygit2.Signature:
    return pygit2.Signature("Demo Developer", "dev@example.com", 1_700_000_000 + t, 0)


def _commit(repo, parent, files: dict[str, str], message: str, t: int) -> pygit2.Oid:
    index = pygit2.Index()
    if parent is not None:
        index.read_tree(repo[parent].tree)
    for path, text in files.items():
        index.add(pygit2.IndexEntry(path, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB))
    tree = index.write_tree(repo)
    return repo.create_commit(None, _sig(t), _sig(t), message, tree, [parent] if parent else [])


def build(data_dir: Path) -> dict:
    """Create (once) the demo remote; returns its path and the SHAs worth trying."""
    remote = Path(data_dir) / "demo" / "calc.git"
    if not (remote / "HEAD").exists():
        repo = pygit2.init_repository(str(remote), bare=True)
        c1 = _commit(repo, None, {"calc.py": CALC_V1, "test_calc.py": TEST_V1, "README.md": "# calc\n"},
                     "Initial calculator", 1)
        c2 = _commit(repo, c1, {"calc.py": CALC_V1 + MUL, "test_mul.py": MUL_TEST}, "Add mul()", 2)
        c3 = _commit(repo, c2, {"calc.py": (CALC_V1 + MUL).replace("return b - a", "return a - b"),
                                "test_sub.py": SUB_TEST},
                     "Fix sub() returning the wrong sign\n\nsub(5, 3) returned -2.\n\nSigned-off-by: Demo Developer "
                     "<dev@example.com>", 3)
        c4 = _commit(repo, c3, {"calc.py": (CALC_V1 + MUL).replace("return b - a", "return a - b")
                                .replace("return a * b", "return int(a) * int(b)")},
                     "Make mul() coerce its arguments to int", 4)
        repo.references.create("refs/heads/main", c4)
        repo.references.create("refs/heads/release/1.0", c1)
        repo.references.create("refs/tags/demo-fix", c3)
        repo.references.create("refs/tags/demo-conflict", c4)
        repo.set_head("refs/heads/main")
    repo = pygit2.Repository(str(remote))
    return {
        "remote": remote,
        "fix": str(repo.references["refs/tags/demo-fix"].peel(pygit2.Commit).id),
        "conflict": str(repo.references["refs/tags/demo-conflict"].peel(pygit2.Commit).id),
    }


def config(base: Config, data_dir: Path) -> tuple[Config, dict]:
    info = build(data_dir)
    repo = RepoConfig(github="demo/calc", default_branch="main", clone_url=str(info["remote"]),
                      releases={"1.0": "release/1.0"},
                      test_command="python3 -m unittest discover -q", test_timeout_s=120)
    return replace(base, repos=(repo,), demo=True), info
