"""The one GitHub client: githubkit with a token or GitHub App installation auth, `GITHUB_API_URL` honoured,
and the REST calls the jobs use. Responses are read as JSON so GitHub Enterprise and older API versions work
alike. Also: webhook signature verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import GitHubException, GraphQLFailed, RequestFailed

from core.audit import scrub

log = logging.getLogger(__name__)


class GitHubError(Exception):
    """GitHub refused or could not be reached; the message says which call and why."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256` (HMAC-SHA256 of the raw body) in constant time."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # As bytes: compare_digest refuses str with non-ASCII characters, which a forged header may carry.
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "surrogateescape"))


class GitHubClient:
    def __init__(self, base_url: str, token: str = "", app_id: str = "", private_key: str = "", timeout: float = 30):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.app_id = app_id
        self.private_key = private_key
        self._installations: dict[str, Any] = {}
        self.meter: Callable[[], Awaitable[Any]] | None = None      # an async callable run before each call (bot.quotas counts it; may refuse)
        self.secrets: list[str] = []     # scrubbed from everything we write to GitHub (bodies, titles)
        kwargs: dict[str, Any] = dict(base_url=self.base_url, timeout=timeout, auto_retry=True, http_cache=False)
        auth: Any = TokenAuthStrategy(token) if token else AppAuthStrategy(app_id, private_key)
        self._default: Any = GitHub(auth, **kwargs)

    @classmethod
    def from_env(cls, env) -> GitHubClient | None:
        if env.github_token:
            return cls(env.github_api_url, token=env.github_token)
        if env.github_app_id:
            return cls(env.github_api_url, app_id=env.github_app_id, private_key=env.github_app_private_key)
        return None

    async def _client_for(self, repo: str) -> GitHub:
        if self.token:
            return self._default
        if repo not in self._installations:
            resp = await self._raw(self._default, "GET", f"/repos/{repo}/installation")
            self._installations[repo] = self._default.with_auth(self._default.auth.as_installation(resp["id"]))
        return self._installations[repo]

    async def _raw(self, gh: GitHub, method: str, path: str, **kwargs) -> Any:
        if self.meter is not None:
            await self.meter()
        if self.secrets and "json" in kwargs:
            kwargs["json"] = json.loads(scrub(json.dumps(kwargs["json"]), [json.dumps(s)[1:-1] for s in self.secrets]))
        try:
            resp = await gh.arequest(method, path, **kwargs)
        except RequestFailed as exc:
            status = exc.response.status_code
            try:
                message = exc.response.json().get("message", "")
            except Exception:
                message = exc.response.text[:200]
            raise GitHubError(f"GitHub {method} {path}: {status} {message}".strip(), status) from exc
        except GitHubException as exc:
            raise GitHubError(f"GitHub {method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    async def graphql(self, repo: str, query: str, variables: dict[str, Any] | None = None) -> dict:
        """A GraphQL call on behalf of `repo` (GitHub Enterprise's /api/graphql is found by githubkit). GitHub
        answers errors with 200 and an `errors` list: those raise GitHubError with GitHub's first message."""
        gh = await self._client_for(repo)
        if self.meter is not None:
            await self.meter()
        try:
            return await gh.async_graphql(query, variables)
        except GraphQLFailed as exc:
            errors = exc.response.errors or []
            first = errors[0].message if errors else "unknown error"
            raise GitHubError(f"GitHub GraphQL: {first}"[:300], 200) from exc
        except RequestFailed as exc:
            raise GitHubError(f"GitHub GraphQL: {exc.response.status_code}", exc.response.status_code) from exc
        except GitHubException as exc:
            raise GitHubError(f"GitHub GraphQL: {exc.__class__.__name__}: {exc}") from exc

    async def request(self, repo: str, method: str, path: str, **kwargs) -> Any:
        """A REST call on behalf of `repo` (owner/name), which picks the App installation when App auth is used."""
        return await self._raw(await self._client_for(repo), method, path, **kwargs)

    async def paginate(self, repo: str, path: str, limit: int = 3000, **params) -> list:
        out: list = []
        page = 1
        while len(out) < limit:
            batch = await self.request(repo, "GET", path, params={**params, "per_page": 100, "page": page})
            if isinstance(batch, dict):  # e.g. {"total_count":…, "items": [...]}
                batch = batch.get("items") or batch.get("files") or []
            out.extend(batch)
            if len(batch) < 100:
                break
            page += 1
        return out[:limit]

    # The calls the jobs use --------------------------------------------------------------------------
    async def pull(self, repo: str, number: int) -> dict:
        return await self.request(repo, "GET", f"/repos/{repo}/pulls/{number}")

    async def pull_commits(self, repo: str, number: int) -> list[dict]:
        return await self.paginate(repo, f"/repos/{repo}/pulls/{number}/commits", limit=250)

    async def pull_files(self, repo: str, number: int) -> list[dict]:
        """A PR's changed files with their patches (GitHub lists at most 3,000)."""
        return await self.paginate(repo, f"/repos/{repo}/pulls/{number}/files", limit=3000)

    async def open_pulls(self, repo: str, head_branch: str, base: str) -> list[dict]:
        owner = repo.split("/")[0]
        return await self.request(repo, "GET", f"/repos/{repo}/pulls",
                                  params={"state": "open", "head": f"{owner}:{head_branch}", "base": base})

    async def create_pull(self, repo: str, title: str, body: str, head: str, base: str, draft: bool = False) -> dict:
        payload: dict[str, Any] = {"title": title, "body": body, "head": head, "base": base}
        if draft:
            payload["draft"] = True
        return await self.request(repo, "POST", f"/repos/{repo}/pulls", json=payload)

    async def update_pull(self, repo: str, number: int, **fields: Any) -> dict:
        """PATCH a PR (title, body, state, base)."""
        return await self.request(repo, "PATCH", f"/repos/{repo}/pulls/{number}", json=fields)

    async def remove_label(self, repo: str, number: int, label: str) -> None:
        """Take a label off an issue or PR; one it does not carry is no error."""
        from urllib.parse import quote

        try:
            await self.request(repo, "DELETE", f"/repos/{repo}/issues/{number}/labels/{quote(label, safe='')}")
        except GitHubError as exc:
            if exc.status != 404:
                raise

    async def commit_status(self, repo: str, sha: str, state: str, context: str, description: str,
                            target_url: str = "") -> dict:
        """A commit status (error, failure, pending, success) on `sha`."""
        payload = {"state": state, "context": context, "description": description[:140]}
        if target_url:
            payload["target_url"] = target_url
        return await self.request(repo, "POST", f"/repos/{repo}/statuses/{sha}", json=payload)

    async def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        await self.request(repo, "POST", f"/repos/{repo}/issues/{number}/labels", json={"labels": labels})

    async def comment(self, repo: str, number: int, body: str) -> dict:
        return await self.request(repo, "POST", f"/repos/{repo}/issues/{number}/comments", json={"body": body})

    async def issue(self, repo: str, number: int) -> dict:
        return await self.request(repo, "GET", f"/repos/{repo}/issues/{number}")

    async def assign(self, repo: str, number: int, login: str) -> None:
        await self.request(repo, "POST", f"/repos/{repo}/issues/{number}/assignees", json={"assignees": [login]})

    async def unassign(self, repo: str, number: int, login: str) -> None:
        await self.request(repo, "DELETE", f"/repos/{repo}/issues/{number}/assignees", json={"assignees": [login]})

    async def user(self, repo: str, login: str) -> dict:
        return await self.request(repo, "GET", f"/users/{login}")

    async def user_gists(self, repo: str, login: str) -> list[dict]:
        out = await self.request(repo, "GET", f"/users/{login}/gists", params={"per_page": 30})
        return out if isinstance(out, list) else []

    async def user_exists(self, repo: str, login: str) -> bool:
        try:
            await self.request(repo, "GET", f"/users/{login}")
            return True
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise

    async def timeline(self, repo: str, number: int, limit: int = 1000) -> list[dict]:
        """An issue's or PR's timeline events (comments, cross-references, reviews, pushes), oldest first."""
        return await self.paginate(repo, f"/repos/{repo}/issues/{number}/timeline", limit=limit)

    async def merged_pulls_by(self, repo: str, login: str) -> int:
        """How many of `login`'s PRs were merged in `repo` (GitHub's search count)."""
        resp = await self.request(repo, "GET", "/search/issues",
                                  params={"q": f"repo:{repo} is:pr is:merged author:{login}", "per_page": 1})
        return int(resp.get("total_count", 0)) if isinstance(resp, dict) else 0

    async def request_reviewers(self, repo: str, number: int, logins: list[str]) -> None:
        await self.request(repo, "POST", f"/repos/{repo}/pulls/{number}/requested_reviewers",
                           json={"reviewers": logins})

    async def linked_open_pulls(self, repo: str, number: int) -> list[int]:
        """Open PRs that reference the issue (cross-referenced events on its timeline)."""
        events = await self.paginate(repo, f"/repos/{repo}/issues/{number}/timeline", limit=500)
        out = []
        for e in events:
            source = (e.get("source") or {}).get("issue") or {}
            if e.get("event") == "cross-referenced" and source.get("pull_request") and source.get("state") == "open":
                out.append(source["number"])
        return out

    async def file_text(self, repo: str, path: str) -> str | None:
        """A file of the default branch, or None when it does not exist."""
        import base64

        try:
            resp = await self.request(repo, "GET", f"/repos/{repo}/contents/{path}")
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(resp, dict) or resp.get("encoding") != "base64":
            return None
        return base64.b64decode(resp.get("content", "")).decode("utf-8", "replace")

    async def check_run(self, repo: str, head_sha: str, conclusion: str, title: str, summary: str,
                        text: str = "", name: str = "provenance", annotations: list[dict] | None = None) -> dict:
        """A completed check run; `annotations` (path, start_line, end_line, annotation_level, message, title,
        raw_details) mark the PR's lines. GitHub takes at most 50 per request: the first 50 go with the run."""
        output: dict[str, Any] = {"title": title[:250], "summary": summary[:60000], "text": text[:60000]}
        if annotations:
            output["annotations"] = [dict(a, title=str(a.get("title", ""))[:255],
                                          message=str(a["message"])[:60000],
                                          raw_details=str(a.get("raw_details", ""))[:60000])
                                     for a in annotations[:MAX_ANNOTATIONS]]
        return await self.request(repo, "POST", f"/repos/{repo}/check-runs", json={
            "name": name, "head_sha": head_sha, "status": "completed", "conclusion": conclusion, "output": output})

    async def permission(self, repo: str, login: str) -> str:
        resp = await self.request(repo, "GET", f"/repos/{repo}/collaborators/{login}/permission")
        return resp.get("permission", "none")


WRITE = {"admin", "maintain", "write"}
MAX_ANNOTATIONS = 50        # GitHub's limit per check-run request


async def can_write(github: GitHubClient | None, repo: str, login: str) -> bool:
    """Whether `login` may write to `repo`: the authorisation behind every GitHub-side trigger. A 4xx (no such
    user, no access) is a no; a 5xx is raised, for GitHub's redelivery to try again."""
    if github is None:
        return False
    try:
        return await github.permission(repo, login) in WRITE
    except GitHubError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return False
        raise
