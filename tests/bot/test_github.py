"""The one GitHub client: token auth, GitHub App installation auth, errors that say what failed."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.github import GitHubClient, GitHubError, verify_signature
from tests.fakes.github import TOKEN


def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


async def test_token_auth_and_errors(github):
    github.add_pull("acme/widget", 3, title="Three", merge_commit_sha="a" * 40)
    gh = GitHubClient(github.url, token=TOKEN)
    assert (await gh.pull("acme/widget", 3))["title"] == "Three"
    with pytest.raises(GitHubError) as err:
        await gh.pull("acme/widget", 4)
    assert err.value.status == 404 and "GET /repos/acme/widget/pulls/4: 404 Not Found" in str(err.value)
    bad = GitHubClient(github.url, token="wrong-token")
    with pytest.raises(GitHubError, match="401 Bad credentials"):
        await bad.pull("acme/widget", 3)


async def test_github_app_installation_auth(github):
    github.add_pull("acme/widget", 3, title="Three", merge_commit_sha="a" * 40)
    gh = GitHubClient(github.url, app_id="12345", private_key=pem())
    assert (await gh.pull("acme/widget", 3))["title"] == "Three"
    names = [name for name, _ in github.calls]
    assert names == ["installation", "access_token", "get_pull"]
    await gh.pull("acme/widget", 3)
    assert [name for name, _ in github.calls].count("installation") == 1   # cached per repo


async def test_server_errors_are_retried(github):
    github.add_pull("acme/widget", 3, title="Three", merge_commit_sha="a" * 40)
    github.fail("get_pull", status=502, times=1, body='{"message": "Bad Gateway"}')
    gh = GitHubClient(github.url, token=TOKEN)
    assert (await gh.pull("acme/widget", 3))["number"] == 3
    assert [n for n, _ in github.calls].count("get_pull") == 2


def test_webhook_signatures():
    body = b'{"a": 1}'
    good = "sha256=" + __import__("hmac").new(b"s3cret", body, "sha256").hexdigest()
    assert verify_signature("s3cret", body, good)
    assert not verify_signature("s3cret", body + b" ", good)
    assert not verify_signature("", body, good)
    assert not verify_signature("s3cret", body, None)
    assert not verify_signature("s3cret", body, good.replace("sha256=", "sha1="))
