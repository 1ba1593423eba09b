"""Build real git repositories for tests with pygit2: a bare "remote" with branches and commits."""

from __future__ import annotations

import itertools
from pathlib import Path

import pygit2

_clock = itertools.count(1)


def sig(name: str = "Dev One", email: str = "dev@example.com") -> pygit2.Signature:
    return pygit2.Signature(name, email, 1_700_000_000 + next(_clock) * 60, 0)


class RepoBuilder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.repo = pygit2.init_repository(str(self.path), bare=True)

    @property
    def url(self) -> str:
        return str(self.path)

    def tip(self, branch: str) -> str:
        return str(self.repo.references[f"refs/heads/{branch}"].target)

    def files(self, rev: str) -> dict[str, str]:
        commit = self.repo.revparse_single(rev).peel(pygit2.Commit)
        out = {}

        def walk(tree, prefix=""):
            for e in tree:
                if e.type_str == "tree":
                    walk(self.repo[e.id], prefix + e.name + "/")
                else:
                    out[prefix + e.name] = self.repo[e.id].data.decode()
        walk(commit.tree)
        return out

    def commit(self, branch: str, files: dict[str, str | bytes | None], message: str, *,
               parents: list[str] | None = None,
               author: pygit2.Signature | None = None, update_ref: bool = True,
               modes: dict[str, int] | None = None) -> str:
        """A commit on `branch`; `modes` gives some files another mode (a symlink: FileMode.LINK, the text
        being its target; an executable: FileMode.BLOB_EXECUTABLE)."""
        ref = f"refs/heads/{branch}"
        if parents is None:
            parents = [self.tip(branch)] if ref in self.repo.references else []
        index = pygit2.Index()
        if parents:
            index.read_tree(self.repo[pygit2.Oid(hex=parents[0])].peel(pygit2.Tree))
        for path, text in files.items():
            if text is None:
                index.remove(path)
            else:
                mode = (modes or {}).get(path, pygit2.enums.FileMode.BLOB)
                data = text if isinstance(text, bytes) else text.encode()
                index.add(pygit2.IndexEntry(path, self.repo.create_blob(data), mode))
        tree = index.write_tree(self.repo)
        s = author or sig()
        oid = self.repo.create_commit(None, s, s, message, tree, [pygit2.Oid(hex=p) for p in parents])
        if update_ref:
            self.repo.references.create(ref, oid, force=True)
        return str(oid)

    def branch(self, name: str, at: str) -> None:
        self.repo.references.create(f"refs/heads/{name}", pygit2.Oid(hex=at), force=True)

    def merge(self, into: str, other: str, message: str) -> str:
        """A merge commit on `into` with `other` as second parent (tree: a clean three-way merge)."""
        ours = self.repo[pygit2.Oid(hex=self.tip(into))]
        theirs = self.repo[pygit2.Oid(hex=other)]
        base = self.repo.merge_base(ours.id, theirs.id)
        index = self.repo.merge_trees(self.repo[base].tree, ours.tree, theirs.tree)
        assert index.conflicts is None
        tree = index.write_tree(self.repo)
        s = sig()
        oid = self.repo.create_commit(f"refs/heads/{into}", s, s, message, tree, [ours.id, theirs.id])
        return str(oid)


def numbered(n: int, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1))
