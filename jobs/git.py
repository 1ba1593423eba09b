"""The git layer (pygit2): one bare mirror per repo, in-memory cherry-picks, throwaway checkouts, pushes.

Mirrors live under `BOT_DATA_DIR/mirrors` and are fetched incrementally, never re-cloned per job. A file lock
(flock) serialises fetches and pushes on one mirror across every worker process on the machine; picks only
write new objects, which is safe alongside. Nothing here runs a shell, and no ref or path from a user reaches
git without being checked first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import MergeFileFlag, MergeFlag

from core.names import is_branch, revision_problem

log = logging.getLogger(__name__)

BOT_SIGNATURE = ("maintainer-bot", "maintainer-bot@users.noreply.github.com")
TRAILER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*: .+|^\(cherry picked from commit [0-9a-f]+\)$")


class GitError(Exception):
    """A git operation failed; the message is fit to show people."""


def safe_ref(name: str) -> str:
    if not is_branch(name):
        raise GitError(f"refusing the ref name {name!r}")
    return name


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Callbacks(pygit2.RemoteCallbacks):
    """Token auth for the configured host only, and the one place a refused push is noticed."""

    def __init__(self, token: str = "", allowed_url: str = ""):
        super().__init__()
        self.token = token
        self.allowed = _host(allowed_url)
        self.rejected: dict[str, str] = {}

    def credentials(self, url, username_from_url, allowed_types):
        # Only the host the operator configured gets the token, whatever a redirect or config says.
        if (self.token and self.allowed and _host(url) == self.allowed
                and allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT):
            return pygit2.UserPass("x-access-token", self.token)
        return None

    def push_update_reference(self, refname, message):
        if message:  # libgit2 reports a ref the server refused here, not as an exception
            self.rejected[refname] = message


# Keys a mirror's own config may hold; anything else (url.*.insteadOf, remote.*.pushurl, http.*, credential.*,
# core.sshCommand, include.path, ...) is removed before every fetch and push.
MIRROR_CONFIG = {"core.repositoryformatversion", "core.filemode", "core.bare", "core.logallrefupdates",
                 "core.ignorecase", "core.precomposeunicode", "core.symlinks"}


class Mirror:
    def __init__(self, data_dir: Path, github: str, clone_url: str, token: str = ""):
        self.path = Path(data_dir) / "mirrors" / (github.replace("/", "__") + ".git")
        self.clone_url = clone_url
        self.token = token

    def _open(self) -> pygit2.Repository:
        if not (self.path / "HEAD").exists():
            return pygit2.init_repository(str(self.path), bare=True)
        repo = pygit2.Repository(str(self.path))
        _clean_config(repo)
        return repo

    def _remote(self, repo: pygit2.Repository) -> pygit2.Remote:
        """The configured URL, named explicitly: nothing in any config can redirect a fetch or a push."""
        return repo.remotes.create_anonymous(self.clone_url)

    def _callbacks(self) -> Callbacks:
        return Callbacks(self.token, self.clone_url)

    def sync(self) -> pygit2.Repository:
        """Fetch every branch (incrementally after the first time) and return the repository."""
        with locked(self.path):
            repo = self._open()
            try:
                self._remote(repo).fetch(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                                         callbacks=self._callbacks(), prune=pygit2.enums.FetchPrune.PRUNE)
            except pygit2.GitError as exc:
                raise GitError(f"fetching {_public_url(self.clone_url)} failed: {exc}") from exc
            return repo

    def repo(self) -> pygit2.Repository:
        return self._open()

    def fetch_pull(self, number: int) -> pygit2.Repository:
        """Fetch a PR's head (GitHub's refs/pull/N/head) into refs/bot/pull/N."""
        with locked(self.path):
            repo = self._open()
            try:
                self._remote(repo).fetch([f"+refs/pull/{int(number)}/head:refs/bot/pull/{int(number)}"],
                                         callbacks=self._callbacks())
            except pygit2.GitError as exc:
                raise GitError(f"fetching PR #{number} failed: {exc}") from exc
            return repo

    def push(self, commit: str, branch: str, *, force: bool = True) -> None:
        """Point `branch` on the remote at `commit`; a refusal by the server raises GitError."""
        branch = safe_ref(branch)
        with locked(self.path):
            repo = self._open()
            local = f"refs/bot/push/{branch}"
            repo.references.create(local, pygit2.Oid(hex=commit), force=True)
            cb = self._callbacks()
            spec = f"{'+' if force else ''}{local}:refs/heads/{branch}"
            try:
                self._remote(repo).push([spec], callbacks=cb)
            except pygit2.GitError as exc:
                raise GitError(f"push of {branch} failed: {exc}") from exc
            finally:
                with contextlib.suppress(KeyError, pygit2.GitError):
                    repo.references.delete(local)
            if cb.rejected:
                ref, why = next(iter(cb.rejected.items()))
                raise GitError(f"the server refused the push of {ref}: {why}")


def _clean_config(repo: pygit2.Repository) -> None:
    """Drop every key of the mirror's own config that is not on the short list (see MIRROR_CONFIG)."""
    path = Path(repo.path) / "config"
    try:
        local = pygit2.Config(str(path))
    except pygit2.GitError:
        return
    names = {entry.name for entry in local}
    for name in names:
        if name.lower() not in MIRROR_CONFIG:
            with contextlib.suppress(KeyError, pygit2.GitError):
                local.delete_multivar(name, ".*")
    if any(n.lower() not in MIRROR_CONFIG for n in names):
        log.warning("mirror %s: removed unexpected config keys %s", repo.path,
                    sorted(n for n in names if n.lower() not in MIRROR_CONFIG)[:10])


def _host(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased; '' for local paths."""
    m = re.match(r"^([a-z][a-z0-9+.-]*)://(?:[^@/]*@)?([^/?#]*)", url or "", re.I)
    return f"{m.group(1).lower()}://{m.group(2).lower()}" if m else ""


def _public_url(url: str) -> str:
    return re.sub(r"//[^@/]+@", "//", url)


def resolve_commit(repo: pygit2.Repository, text: str) -> pygit2.Commit:
    """A full or abbreviated SHA to a commit in the mirror."""
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", text):
        raise GitError(f"{text!r} is not a commit SHA")
    try:
        obj = repo.revparse_single(text.lower())
    except (KeyError, ValueError, pygit2.GitError):
        raise GitError(f"commit {text} is not in the repository (or the abbreviation is ambiguous)")
    commit = obj.peel(pygit2.Commit)
    return commit


def resolve_revision(repo: pygit2.Repository, text: str, branch_for=lambda name: name) -> pygit2.Commit:
    """A revision in git's syntax (checked by core.names.revision_problem: name or SHA, then ^, ^N, ~, ~N) to a
    commit: the name is a release (mapped by `branch_for`), a branch, a tag, or a SHA. pygit2 resolves it;
    nothing reaches a shell."""
    problem = revision_problem(text)
    if problem:
        raise GitError(f"{text[:60]!r} is not a revision: it {problem}")
    cut = next((i for i, ch in enumerate(text) if ch in "^~"), len(text))
    name, suffix = text[:cut], text[cut:]
    candidates = [f"refs/heads/{branch_for(name)}", f"refs/heads/{name}", f"refs/tags/{name}"]
    start = None
    for ref in candidates:
        if ref in repo.references:
            start = ref
            break
    if start is None:
        try:
            start = str(resolve_commit(repo, name).id)
        except GitError:
            raise GitError(f"{name!r} is neither a branch, a tag, a release nor a commit of the repository")
    try:
        return repo.revparse_single(start + suffix).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise GitError(f"{text!r} does not name a commit (is the history that deep?)")


def branch_tip(repo: pygit2.Repository, branch: str) -> pygit2.Commit | None:
    ref = repo.references.get(f"refs/heads/{safe_ref(branch)}")
    return ref.peel(pygit2.Commit) if ref else None


def add_cherry_line(message: str, sha: str) -> str:
    """The original message with `(cherry picked from commit <sha>)` added before any trailers."""
    line = f"(cherry picked from commit {sha})"
    body = message.rstrip("\n")
    if line in body:
        return body + "\n"
    paragraphs = body.split("\n\n")
    last = paragraphs[-1].splitlines()
    if len(paragraphs) > 1 and last and all(TRAILER.match(x) or x.startswith((" ", "\t")) for x in last):
        paragraphs.insert(len(paragraphs) - 1, line)
    else:
        paragraphs.append(line)
    return "\n\n".join(paragraphs) + "\n"


@dataclass
class Conflict:
    path: str
    ours: str | None        # the branch's version
    theirs: str | None      # the picked commit's version
    ancestor: str | None    # the commit's parent version
    merged: str             # file text with conflict markers


@dataclass
class PickResult:
    tree: str | None                      # result tree when clean
    conflicts: list[Conflict] = field(default_factory=list)
    whitespace_settled: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)   # paths the picked commit changes (either side of renames)
    empty: bool = False
    renames: dict[str, str] = field(default_factory=dict)   # a touched path → its name on the branch, if renamed


def relabel(text: str) -> str:
    """Conflict markers that say which side is which (libgit2 labels both with the path)."""
    text = re.sub(r"^<{7} .*$", "<<<<<<< release branch", text, flags=re.M)
    return re.sub(r"^>{7} .*$", ">>>>>>> picked commit", text, flags=re.M)


def blob_bytes(repo, oid) -> bytes:
    """A blob's content."""
    return repo[oid].data


def _blob_text(repo, entry) -> str | None:
    if entry is None:
        return None
    data = repo[entry.id].data
    return data.decode("utf-8", "replace")


def changed_paths(repo: pygit2.Repository, commit: pygit2.Commit, parent: pygit2.Commit) -> list[str]:
    diff = repo.diff(parent, commit)
    diff.find_similar()
    paths = set()
    for delta in diff.deltas:
        paths.add(delta.old_file.path)
        paths.add(delta.new_file.path)
    return sorted(paths)


def pick(repo: pygit2.Repository, commit: pygit2.Commit, onto: pygit2.Commit, mainline: int = 1) -> PickResult:
    """Three-way merge of parent→commit onto `onto`, renames followed, entirely in memory."""
    if not commit.parents:
        raise GitError(f"{commit.id} is a root commit and cannot be cherry-picked")
    if len(commit.parents) > 1 and not 1 <= mainline <= len(commit.parents):
        raise GitError(f"{commit.id} is a merge commit without a valid mainline")
    parent = commit.parents[mainline - 1]
    touched = changed_paths(repo, commit, parent)
    index = repo.merge_trees(parent.tree, onto.tree, commit.tree, flags=MergeFlag.FIND_RENAMES)
    settled: list[str] = []
    if index.conflicts is not None:
        first = {(c[1] or c[2] or c[0]).path for c in index.conflicts}
        ws = repo.merge_trees(parent.tree, onto.tree, commit.tree, flags=MergeFlag.FIND_RENAMES,
                              file_flags=MergeFileFlag.IGNORE_WHITESPACE_CHANGE | MergeFileFlag.IGNORE_WHITESPACE_EOL)
        left = {(c[1] or c[2] or c[0]).path for c in ws.conflicts} if ws.conflicts is not None else set()
        if left != first:
            settled = sorted(first - left)
            index = ws
            for path in settled:        # where the sides differ only in whitespace, the branch's lines stay
                _keep_branch_whitespace(repo, index, onto, path)
    if index.conflicts is not None:
        renames = _branch_renames(repo, parent, onto, touched)
        conflicts = []
        for ancestor, ours, theirs in index.conflicts:
            path = (ours or theirs or ancestor).path
            if ours is not None and theirs is not None:
                merged = repo.merge_file_from_index(ancestor, ours, theirs)
                merged_text = relabel(merged.contents if hasattr(merged, "contents") else str(merged))
            else:
                merged_text = ""  # modify/delete: no text merge possible
            conflicts.append(Conflict(path, _blob_text(repo, ours), _blob_text(repo, theirs),
                                      _blob_text(repo, ancestor), merged_text))
        return PickResult(None, conflicts, settled, touched, renames=renames)
    tree = index.write_tree(repo)
    return PickResult(str(tree), [], settled, touched, empty=(tree == onto.tree.id))


def tree_with_markers(repo: pygit2.Repository, commit: pygit2.Commit, onto: pygit2.Commit, mainline: int = 1) -> str:
    """The pick's tree with every conflicted file written with its conflict markers (for a draft PR a person
    finishes). Where one side deleted the file, the side that kept it stays, whole."""
    parent = commit.parents[mainline - 1]
    index = repo.merge_trees(parent.tree, onto.tree, commit.tree, flags=MergeFlag.FIND_RENAMES)
    if index.conflicts is None:
        return str(index.write_tree(repo))
    for ancestor, ours, theirs in list(index.conflicts):
        path = (ours or theirs or ancestor).path
        if ours is not None and theirs is not None:
            merged = repo.merge_file_from_index(ancestor, ours, theirs)
            data = relabel(merged.contents if hasattr(merged, "contents") else str(merged)).encode()
            mode = ours.mode
        else:
            kept = ours or theirs
            data, mode = blob_bytes(repo, kept.id), kept.mode
        del index.conflicts[path]
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    return str(index.write_tree(repo))


def _branch_renames(repo, parent, onto, touched: list[str]) -> dict[str, str]:
    """Touched paths the branch has under another name (git's rename detection between the commit's parent
    and the branch), so the checker looks for their hunks where the code now lives."""
    missing = [p for p in touched if _entry(onto.tree, p) is None and _entry(parent.tree, p) is not None]
    if not missing:
        return {}
    diff = repo.diff(parent.tree, onto.tree)
    diff.find_similar()
    out = {}
    for delta in diff.deltas:
        if delta.status == pygit2.enums.DeltaStatus.RENAMED and delta.old_file.path in missing:
            out[delta.old_file.path] = delta.new_file.path
    return out


def _entry(tree, path: str):
    try:
        return tree[path]
    except KeyError:
        return None


def _keep_branch_whitespace(repo, index, onto, path: str) -> None:
    """In a file settled by a whitespace-insensitive merge, lines that equal the branch's but for whitespace
    take the branch's form (its trailing spaces, its wrapping): the maintainers' choice on real backports.
    Lines that differ in anything but whitespace are left exactly as merged."""
    import difflib

    branch = file_at(repo, onto, path)
    try:
        entry = index[path]
    except KeyError:
        return
    merged = repo[entry.id].data.decode("utf-8", "replace")
    if branch is None or merged == branch or len(merged) > 4_000_000:
        return
    r_lines, b_lines = merged.split("\n"), branch.split("\n")
    r_norm = ["".join(x.split()) for x in r_lines]
    b_norm = ["".join(x.split()) for x in b_lines]
    sm = difflib.SequenceMatcher(None, r_norm, b_norm, autojunk=False)
    changed = False
    for a, b, size in sm.get_matching_blocks():
        for k in range(size):
            if r_lines[a + k] != b_lines[b + k]:
                r_lines[a + k] = b_lines[b + k]
                changed = True
    if changed:
        blob = repo.create_blob("\n".join(r_lines).encode())
        index.add(pygit2.IndexEntry(path, blob, entry.mode))


def add_signoff(message: str, name: str, email: str) -> str:
    """`Signed-off-by: name <email>` added to the message's trailer block (a new block when it has none);
    every line already there, the author's own sign-off included, is kept; nothing is added twice."""
    line = f"Signed-off-by: {name} <{email}>"
    body = message.rstrip("\n")
    if line in body.splitlines():
        return body + "\n"
    paragraphs = body.split("\n\n")
    last = paragraphs[-1].splitlines()
    if len(paragraphs) > 1 and last and all(TRAILER.match(x) or x.startswith((" ", "\t")) for x in last):
        paragraphs[-1] = paragraphs[-1] + "\n" + line
    else:
        paragraphs.append(line)
    return "\n\n".join(paragraphs) + "\n"


def commit_tree(repo: pygit2.Repository, tree: str, parent: pygit2.Commit, original: pygit2.Commit,
                identity: tuple[str, str] = BOT_SIGNATURE, signoff: bool = False) -> str:
    """A commit of `tree` on `parent` keeping the original author and message, plus the cherry-pick line (and,
    with `signoff`, the committer's `Signed-off-by:`, as a DCO check asks)."""
    committer = pygit2.Signature(*identity)
    message = add_cherry_line(original.message, str(original.id))
    if signoff:
        message = add_signoff(message, *identity)
    oid = repo.create_commit(None, original.author, committer, message, pygit2.Oid(hex=tree), [parent.id])
    return str(oid)


def tree_with_files(repo: pygit2.Repository, base_tree: pygit2.Tree, files: Mapping[str, str | None]) -> str:
    """`base_tree` with some files replaced (None deletes), written as a new tree."""
    index = pygit2.Index()
    index.read_tree(base_tree)
    for path, text in files.items():
        if text is None:
            with contextlib.suppress(KeyError, pygit2.GitError):
                index.remove(path)
            continue
        blob = repo.create_blob(text.encode())
        mode = index[path].mode if path in index else pygit2.enums.FileMode.BLOB
        index.add(pygit2.IndexEntry(path, blob, mode))
    return str(index.write_tree(repo))


def file_at(repo: pygit2.Repository, commit: pygit2.Commit, path: str) -> str | None:
    try:
        entry = commit.tree[path]
    except KeyError:
        return None
    obj = repo[entry.id]
    return obj.data.decode("utf-8", "replace") if isinstance(obj, pygit2.Blob) else None      # a directory: none


def special_paths(repo: pygit2.Repository, trees: list, paths) -> set[str]:
    """Those of `paths` that are a symbolic link or a submodule in any of `trees`: not text to be edited."""
    special = {pygit2.enums.FileMode.LINK, pygit2.enums.FileMode.COMMIT}
    found = set()
    for path in paths:
        for tree in trees:
            try:
                if tree[path].filemode in special:
                    found.add(path)
                    break
            except (KeyError, ValueError):
                continue
    return found


def checkout(repo: pygit2.Repository, commit: str, parent_dir: Path) -> Path:
    """A throwaway checkout of `commit` (a plain directory, no .git), for tests and builds. Symbolic links that
    point outside it are written as plain files holding the link's text (git's `core.symlinks=false`), so a
    commit cannot lead a test or build command to files of this machine."""
    parent_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="checkout-", dir=parent_dir))
    repo.checkout_tree(repo[pygit2.Oid(hex=commit)].peel(pygit2.Tree), directory=str(path),
                       strategy=pygit2.enums.CheckoutStrategy.FORCE | pygit2.enums.CheckoutStrategy.RECREATE_MISSING)
    inert_links(path)
    return path


def inert_links(root: Path) -> list[str]:
    """Replace every symbolic link under `root` that resolves outside it (absolute, `..` past the root, or
    through another such link) by a plain file holding its target text. Returns their relative paths."""
    root = Path(os.path.realpath(root))
    escaping = []
    for dirpath, dirnames, filenames in os.walk(root):      # os.walk does not follow links to directories
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                continue
            target = os.path.realpath(full)
            if target != str(root) and not target.startswith(str(root) + os.sep):
                escaping.append((full, os.readlink(full)))
    for full, text in escaping:           # decided first, replaced after: a chain through a link is judged whole
        os.unlink(full)
        with open(full, "x", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
    if escaping:
        log.warning("checkout %s: %d symbolic link(s) pointing outside written as plain files", root, len(escaping))
    return sorted(os.path.relpath(f, root) for f, _ in escaping)


def remove_checkout(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def missing_dependencies(repo: pygit2.Repository, commit: pygit2.Commit, branch: pygit2.Commit, paths: list[str],
                         limit: int = 300) -> list[tuple[str, str]]:
    """Commits that touched `paths` between the branch's fork point and the picked commit's parent, and are
    not on the branch: likely prerequisites of a conflicted backport. Returns (short sha, subject)."""
    base = repo.merge_base(commit.parents[0].id, branch.id)
    if base is None:
        return []
    found: list[tuple[str, str]] = []
    walker = repo.walk(commit.parents[0].id, pygit2.enums.SortMode.TOPOLOGICAL)
    walker.hide(base)
    for i, c in enumerate(walker):
        if i >= limit or len(found) >= 5:
            break
        if not c.parents:
            continue
        if set(changed_paths(repo, c, c.parents[0])) & set(paths):
            found.append((str(c.id)[:10], c.message.splitlines()[0] if c.message else ""))
    return found


def env_without_secrets(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a test command or build gets: enough to run tools, nothing that could be a secret."""
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TERM", "TZ") if k in os.environ}
    keep.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    keep.update(extra or {})
    return keep


def commit_at(repo: pygit2.Repository, sha: str | pygit2.Oid) -> pygit2.Commit:
    """The commit `sha` names (GitError for anything else): a typed `repo[sha]`."""
    obj = repo[sha if isinstance(sha, pygit2.Oid) else pygit2.Oid(hex=sha)]
    if not isinstance(obj, pygit2.Commit):
        raise GitError(f"{str(sha)[:12]} is not a commit")
    return obj
