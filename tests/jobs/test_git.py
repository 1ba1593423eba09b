"""The git layer's guards on what a commit can put on disk: throwaway checkouts never hold a symbolic link that
leads outside them."""

from __future__ import annotations

import os

import pygit2
import pytest

from jobs import git
from tests.gitrepo import RepoBuilder

LINK = pygit2.enums.FileMode.LINK


def test_checkout_makes_escaping_links_plain_files_and_keeps_inner_ones(tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP SECRET\n")
    remote = RepoBuilder(tmp_path / "remote.git")
    sha = remote.commit("main", {
        "src/a.c": "int a;\n",
        "abs": str(secret),                      # absolute
        "src/up": "../../outside/secret.txt",    # `..` past the root
        "src/dir-out": "/",                      # a directory outside
        "via": "src/up",                         # a chain through an escaping link
        "self-root": ".",                        # the root itself: inside
        "docs/inner": "../src/a.c",              # inside
        "docs/dangling": "../missing.c",         # inside, dangling
    }, "links", modes={p: LINK for p in ("abs", "src/up", "src/dir-out", "via", "self-root", "docs/inner",
                                         "docs/dangling")})
    path = git.checkout(remote.repo, sha, tmp_path / "work")
    try:
        for name, text in (("abs", str(secret)), ("src/up", "../../outside/secret.txt"), ("src/dir-out", "/"),
                           ("via", "src/up")):
            assert not os.path.islink(path / name), name
            assert (path / name).read_text() == text        # the link's text, as git writes with symlinks off
        for name in ("self-root", "docs/inner", "docs/dangling"):
            assert os.path.islink(path / name), name
        assert (path / "docs/inner").read_text() == "int a;\n"
        assert "TOP SECRET" not in "".join(p.read_text() for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    finally:
        git.remove_checkout(path)


def test_inert_links_reports_what_it_changed(tmp_path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    os.symlink("/etc", root / "a" / "etc")
    os.symlink("..", root / "a" / "up")          # the root itself: stays
    os.symlink("../..", root / "a" / "upup")
    assert git.inert_links(root) == ["a/etc", "a/upup"]
    assert os.path.islink(root / "a" / "up")
    assert git.inert_links(root) == []           # idempotent


def test_special_paths_are_links_and_submodules(tmp_path):
    remote = RepoBuilder(tmp_path / "remote.git")
    sha = remote.commit("main", {"a.txt": "a\n", "l": "a.txt"}, "one", modes={"l": LINK})
    tree = remote.repo[pygit2.Oid(hex=sha)].tree
    assert git.special_paths(remote.repo, [tree], ["a.txt", "l", "missing"]) == {"l"}


def test_a_poisoned_mirror_config_cannot_redirect_fetch_or_push(tmp_path):
    """A mirror whose config someone rewrote (pushurl, insteadOf) still fetches from and pushes to the
    configured URL only, and the keys are gone afterwards."""
    remote = RepoBuilder(tmp_path / "remote.git")
    evil = RepoBuilder(tmp_path / "evil.git")
    base = remote.commit("main", {"a.txt": "one\n"}, "Initial")
    evil.commit("main", {"a.txt": "evil\n"}, "Evil")
    mirror = git.Mirror(tmp_path / "data", "acme/widget", remote.url, token="ghp_tokentokentoken")
    mirror.sync()
    cfg = pygit2.Config(str(mirror.path / "config"))
    cfg[f"url.{evil.url}.insteadOf"] = remote.url
    cfg["remote.origin.url"] = evil.url
    cfg["remote.origin.pushurl"] = evil.url
    cfg["core.sshCommand"] = "touch /tmp/pwned"
    repo = mirror.sync()
    assert str(repo.references["refs/heads/main"].target) == base          # fetched from the real remote
    mirror.push(base, "backport/x")
    assert "refs/heads/backport/x" in remote.repo.references
    assert "refs/heads/backport/x" not in evil.repo.references
    keys = {e.name.lower() for e in pygit2.Config(str(mirror.path / "config"))}
    assert not any(k.startswith(("url.", "remote.")) or k == "core.sshcommand" for k in keys), keys


def test_the_token_goes_only_to_the_configured_host():
    cb = git.Callbacks("ghp_tokentokentoken", "https://github.com/acme/widget.git")
    plain = pygit2.enums.CredentialType.USERPASS_PLAINTEXT
    assert cb.credentials("https://evil.example.org/acme/widget.git", None, plain) is None
    assert cb.credentials("https://github.com.evil.org/acme/widget.git", None, plain) is None
    assert cb.credentials("http://github.com/acme/widget.git", None, plain) is None          # no downgrade
    assert isinstance(cb.credentials("https://github.com/acme/other.git", None, plain), pygit2.UserPass)
    assert git.Callbacks("ghp_tokentokentoken", "/srv/git/widget.git").credentials(
        "https://github.com/acme/widget.git", None, plain) is None


@pytest.mark.parametrize("message, expected", [
    ("Fix it", "Fix it\n\nSigned-off-by: Bot <bot@x.org>\n"),
    ("Fix it\n\nBody.\n\nSigned-off-by: Ada <ada@x.org>",
     "Fix it\n\nBody.\n\nSigned-off-by: Ada <ada@x.org>\nSigned-off-by: Bot <bot@x.org>\n"),
    ("Fix it\n\n(cherry picked from commit abc)", "Fix it\n\n(cherry picked from commit abc)\nSigned-off-by: Bot <bot@x.org>\n"),
    ("Fix it\n\nSigned-off-by: Bot <bot@x.org>\n", "Fix it\n\nSigned-off-by: Bot <bot@x.org>\n"),       # not twice
])
def test_a_sign_off_joins_the_trailers_and_keeps_the_authors(message, expected):
    assert git.add_signoff(message, "Bot", "bot@x.org") == expected
