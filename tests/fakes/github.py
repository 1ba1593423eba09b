"""Fake GitHub REST API: pulls (get, list by head/base, create, commits), issues (labels, comments),
collaborator permissions, and GitHub App installation tokens. State is plain dicts tests can set and read."""

from __future__ import annotations

import itertools
import re

from aiohttp import web

from tests.fakes.github_graphql import GraphQLFake
from tests.fakes.server import FakeServer

TOKEN = "ghp_testtoken0000"
INSTALLATION_TOKEN = "ghs_installation0000"


class FakeGitHub(FakeServer):
    def __init__(self):
        super().__init__()
        self.pulls: dict[str, dict[int, dict]] = {}
        self.pull_commits: dict[str, dict[int, list[dict]]] = {}
        self.pull_files: dict[str, dict[int, list[dict]]] = {}
        self.comments: dict[str, dict[int, list[dict]]] = {}
        self.labels: dict[str, dict[int, list[str]]] = {}
        self.permissions: dict[str, dict[str, str]] = {}
        self.no_such_users: set[str] = set()          # logins GitHub answers 404 for
        self.issues: dict[str, dict[int, dict]] = {}
        self.timelines: dict[str, dict[int, list[dict]]] = {}
        self.files: dict[str, dict[str, str]] = {}
        self.users: set[str] = set()
        self.bios: dict[str, str] = {}
        self.gists: dict[str, list[dict]] = {}
        self.check_runs: list[dict] = []
        self.statuses: dict[str, dict[str, list[dict]]] = {}     # repo -> sha -> statuses, newest last
        self.gql = GraphQLFake(self)
        self._numbers = itertools.count(5000)
        self.routes = [
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/installation", self.installation),
            ("POST", r"/app/installations/(?P<id>\d+)/access_tokens", self.access_token),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls/(?P<n>\d+)/commits", self.get_pull_commits),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls/(?P<n>\d+)/files", self.get_pull_files),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls/(?P<n>\d+)", self.get_pull),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls", self.list_pulls),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls", self.create_pull),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/labels", self.add_labels),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/comments", self.add_comment),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)", self.get_issue),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/collaborators/(?P<login>[^/]+)/permission", self.permission),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/assignees", self.add_assignees),
            ("DELETE", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/assignees", self.remove_assignees),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/timeline", self.timeline),
            ("GET", r"/repos/(?P<repo>[^/]+/[^/]+)/contents/(?P<path>.+)", self.contents),
            ("GET", r"/users/(?P<login>[^/]+)/gists", self.user_gists),
            ("GET", r"/users/(?P<login>[^/]+)", self.get_user),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/check-runs", self.create_check_run),
            ("PATCH", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls/(?P<n>\d+)", self.patch_pull),
            ("DELETE", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/labels/(?P<name>[^/]+)", self.remove_label),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/statuses/(?P<sha>[0-9a-f]{40})", self.create_status),
            ("POST", r"/graphql", self.graphql),
            ("GET", r"/search/issues", self.search_issues),
            ("POST", r"/repos/(?P<repo>[^/]+/[^/]+)/pulls/(?P<n>\d+)/requested_reviewers", self.request_reviewers),
        ]
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)

    def add_pull(self, repo: str, number: int, *, title: str, merge_commit_sha: str | None, merged: bool = True,
                 commits: list[dict] | None = None, base: str = "main", body: str = "",
                 files: list[dict] | None = None, head_sha: str = "", merged_at: str = "2026-11-01T00:00:00Z",
                 labels: tuple[str, ...] = ()) -> dict:
        if labels:
            self.labels.setdefault(repo, {})[number] = list(labels)
        pr = {"number": number, "title": title, "body": body, "state": "closed" if merged else "open",
              "merged": merged, "merged_at": merged_at if merged else None,
              "merge_commit_sha": merge_commit_sha, "base": {"ref": base}, "head": {"ref": f"topic-{number}", "sha": head_sha or "f" * 40},
              "html_url": f"https://github.example/{repo}/pull/{number}", "user": {"login": "author"}}
        self.pulls.setdefault(repo, {})[number] = pr
        self.pull_commits.setdefault(repo, {})[number] = commits or []
        self.pull_files.setdefault(repo, {})[number] = files or []
        return pr

    async def dispatch(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        for method, pattern, handler in self.routes:
            m = re.fullmatch(pattern, path)
            if m and request.method == method:
                body = await request.json() if request.can_read_body else {}
                name = handler.__name__
                self.calls.append((name, {"path": path, "body": body, "query": dict(request.query)}))
                await self.maybe_hang(name)
                failure = self.take_failure(name)
                if failure is not None:
                    return failure
                auth = request.headers.get("Authorization", "")
                if name not in ("installation", "access_token") and auth not in (
                        f"token {TOKEN}", f"Bearer {TOKEN}", f"token {INSTALLATION_TOKEN}",
                        f"Bearer {INSTALLATION_TOKEN}"):
                    return web.json_response({"message": "Bad credentials"}, status=401)
                answer = await handler(request, body, **m.groupdict())
                await self.maybe_linger(name, body)
                return answer
        return web.json_response({"message": "Not Found"}, status=404)

    async def installation(self, request, body, repo):
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.json_response({"message": "A JSON web token could not be decoded"}, status=401)
        return web.json_response({"id": 42, "account": {"login": repo.split("/")[0]}, "app_id": 1})

    async def access_token(self, request, body, id):
        return web.json_response({"token": INSTALLATION_TOKEN, "expires_at": "2099-01-01T00:00:00Z",
                                  "permissions": {"contents": "write", "pull_requests": "write"},
                                  "repository_selection": "all"}, status=201)

    async def get_pull(self, request, body, repo, n):
        pr = self.pulls.get(repo, {}).get(int(n))
        return web.json_response(pr) if pr else web.json_response({"message": "Not Found"}, status=404)

    async def get_pull_commits(self, request, body, repo, n):
        commits = self.pull_commits.get(repo, {}).get(int(n), [])
        page, per = int(request.query.get("page", 1)), int(request.query.get("per_page", 30))
        return web.json_response(commits[(page - 1) * per: page * per])

    async def get_pull_files(self, request, body, repo, n):
        files = self.pull_files.get(repo, {}).get(int(n), [])
        page, per = int(request.query.get("page", 1)), min(int(request.query.get("per_page", 30)), 100)
        return web.json_response(files[(page - 1) * per: page * per])

    async def list_pulls(self, request, body, repo):
        q = request.query
        out = []
        for pr in self.pulls.get(repo, {}).values():
            if q.get("state", "open") != "all" and pr["state"] != q.get("state", "open"):
                continue
            if "head" in q and f"{repo.split('/')[0]}:{pr['head']['ref']}" != q["head"]:
                continue
            if "base" in q and pr["base"]["ref"] != q["base"]:
                continue
            out.append(pr)
        return web.json_response(out)

    async def create_pull(self, request, body, repo):
        for pr in self.pulls.get(repo, {}).values():
            if pr["state"] == "open" and pr["head"]["ref"] == body["head"] and pr["base"]["ref"] == body["base"]:
                return web.json_response({"message": "Validation Failed", "errors": [
                    {"message": f"A pull request already exists for {body['head']}."}]}, status=422)
        number = next(self._numbers)
        pr = {"number": number, "title": body["title"], "body": body.get("body", ""), "state": "open",
              "merged": False, "merged_at": None, "merge_commit_sha": None, "head": {"ref": body["head"]},
              "draft": bool(body.get("draft", False)),
              "base": {"ref": body["base"]}, "html_url": f"https://github.example/{repo}/pull/{number}",
              "user": {"login": "maintainer-bot"}}
        self.pulls.setdefault(repo, {})[number] = pr
        return web.json_response(pr, status=201)

    async def patch_pull(self, request, body, repo, n):
        pr = self.pulls.get(repo, {}).get(int(n))
        if pr is None:
            return web.json_response({"message": "Not Found"}, status=404)
        unknown = set(body) - {"title", "body", "state", "base", "maintainer_can_modify"}
        if unknown or ("state" in body and body["state"] not in ("open", "closed")):
            return web.json_response({"message": "Validation Failed", "errors": [
                {"resource": "PullRequest", "code": "invalid", "field": sorted(unknown or {"state"})[0]}]}, status=422)
        pr.update({k: v for k, v in body.items() if k in ("title", "body", "state")})
        return web.json_response(pr)

    async def remove_label(self, request, body, repo, n, name):
        from urllib.parse import unquote

        labels = self.labels.setdefault(repo, {}).setdefault(int(n), [])
        name = unquote(name)
        if name not in labels:
            return web.json_response({"message": "Label does not exist",
                                      "documentation_url": "https://docs.github.com/rest/issues/labels"}, status=404)
        labels.remove(name)
        return web.json_response([{"name": lbl} for lbl in labels])

    async def create_status(self, request, body, repo, sha):
        if body.get("state") not in ("error", "failure", "pending", "success"):
            return web.json_response({"message": "Validation Failed", "errors": [
                {"resource": "Status", "code": "custom", "field": "state",
                 "message": "state is not included in the list"}]}, status=422)
        status = {"state": body["state"], "context": body.get("context", "default"),
                  "description": body.get("description"), "target_url": body.get("target_url")}
        if len(status["description"] or "") > 140:
            return web.json_response({"message": "Validation Failed", "errors": [
                {"resource": "Status", "code": "custom", "field": "description",
                 "message": "description is too long (maximum is 140 characters)"}]}, status=422)
        self.statuses.setdefault(repo, {}).setdefault(sha, []).append(status)
        return web.json_response(dict(status, id=next(self._numbers)), status=201)

    def status_of(self, repo: str, sha: str, context: str) -> str | None:
        """The latest state of one status context on a commit, as GitHub's combined status shows it."""
        states = [s["state"] for s in self.statuses.get(repo, {}).get(sha, []) if s["context"] == context]
        return states[-1] if states else None

    async def search_issues(self, request, body):
        """REST search, as the bot uses it: `repo:` `is:pr` `is:merged` `author:` qualifiers; 422 without a query."""
        from tests.fakes.github_graphql import search_terms

        q = request.query.get("q", "")
        if not q:
            return web.json_response({"message": "Validation Failed", "errors": [
                {"resource": "Search", "field": "q", "code": "missing"}]}, status=422)
        terms = search_terms(q)
        repos = [v for k, v in terms if k == "repo"] or list(self.pulls)
        authors = {v.lower() for k, v in terms if k == "author"}
        items = []
        for repo in repos:
            for pr in self.pulls.get(repo, {}).values():
                if ("is", "merged") in terms and not pr.get("merged"):
                    continue
                if authors and str(pr.get("user", {}).get("login", "")).lower() not in authors:
                    continue
                items.append({"number": pr["number"], "title": pr["title"], "pull_request": {"merged_at":
                                                                                         pr.get("merged_at")}})
        per = min(int(request.query.get("per_page", 30)), 100)
        return web.json_response({"total_count": len(items), "incomplete_results": False, "items": items[:per]})

    async def request_reviewers(self, request, body, repo, n):
        pr = self.pulls.get(repo, {}).get(int(n))
        if pr is None:
            return web.json_response({"message": "Not Found"}, status=404)
        reviewers = body.get("reviewers") or []
        if pr.get("user", {}).get("login") in reviewers:
            return web.json_response({"message": "Review cannot be requested from pull request author.",
                                      "documentation_url": "https://docs.github.com/rest/pulls/review-requests"},
                                     status=422)
        pr.setdefault("requested_reviewers", []).extend({"login": r} for r in reviewers)
        return web.json_response(pr, status=201)

    async def graphql(self, request, body):
        return web.json_response(await self.gql.execute(body))

    def merge(self, repo: str, number: int, merge_commit_sha: str) -> dict:
        """The PR merged (tests push the commit to the branch themselves)."""
        pr = self.pulls[repo][number]
        pr.update(state="closed", merged=True, merged_at="2026-11-20T00:00:00Z", merge_commit_sha=merge_commit_sha)
        return pr

    async def add_labels(self, request, body, repo, n):
        labels = self.labels.setdefault(repo, {}).setdefault(int(n), [])
        labels.extend(lbl for lbl in body["labels"] if lbl not in labels)
        return web.json_response([{"name": lbl} for lbl in labels])

    async def add_comment(self, request, body, repo, n):
        comment = {"id": next(self._numbers), "body": body["body"]}
        self.comments.setdefault(repo, {}).setdefault(int(n), []).append(comment)
        return web.json_response(comment, status=201)

    async def get_issue(self, request, body, repo, n):
        issue = self.issues.get(repo, {}).get(int(n))
        return web.json_response(issue) if issue else web.json_response({"message": "Not Found"}, status=404)

    def add_issue(self, repo: str, number: int, title: str, state: str = "open", assignees=()) -> dict:
        issue = {"number": number, "title": title, "state": state, "body": "",
                 "html_url": f"https://github.example/{repo}/issues/{number}",
                 "assignees": [{"login": a} for a in assignees]}
        self.issues.setdefault(repo, {})[number] = issue
        return issue

    async def add_assignees(self, request, body, repo, n):
        issue = self.issues.get(repo, {}).get(int(n))
        if issue is None:
            return web.json_response({"message": "Not Found"}, status=404)
        for login in body.get("assignees", []):
            if login not in [a["login"] for a in issue["assignees"]]:
                issue["assignees"].append({"login": login})
        return web.json_response(issue, status=201)

    async def remove_assignees(self, request, body, repo, n):
        issue = self.issues.get(repo, {}).get(int(n))
        if issue is None:
            return web.json_response({"message": "Not Found"}, status=404)
        issue["assignees"] = [a for a in issue["assignees"] if a["login"] not in body.get("assignees", [])]
        return web.json_response(issue)

    async def timeline(self, request, body, repo, n):
        events = self.timelines.get(repo, {}).get(int(n), [])
        page, per = int(request.query.get("page", 1)), int(request.query.get("per_page", 30))
        return web.json_response(events[(page - 1) * per: page * per])

    async def contents(self, request, body, repo, path):
        import base64

        text = self.files.get(repo, {}).get(path)
        if text is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response({"type": "file", "path": path, "encoding": "base64",
                                  "content": base64.b64encode(text.encode()).decode()})

    async def create_check_run(self, request, body, repo):
        """As strict as GitHub: at most 50 annotations a request, each with a path, lines, a level and a message
        (422 otherwise)."""
        annotations = (body.get("output") or {}).get("annotations") or []
        if len(annotations) > 50:
            return web.json_response({"message": "Only 50 annotations are allowed per request",
                                      "documentation_url": "https://docs.github.com/rest/checks/runs"}, status=422)
        for a in annotations:
            ok = (isinstance(a.get("path"), str) and a["path"] and isinstance(a.get("start_line"), int)
                  and isinstance(a.get("end_line"), int) and a["start_line"] <= a["end_line"]
                  and a.get("annotation_level") in ("notice", "warning", "failure")
                  and isinstance(a.get("message"), str) and a["message"]
                  and len(str(a.get("title", ""))) <= 255)
            if not ok:
                return web.json_response({"message": "Invalid request.\n\nFor 'items', annotation is not valid.",
                                          "documentation_url": "https://docs.github.com/rest/checks/runs"},
                                         status=422)
        number = next(self._numbers)
        run = dict(body, id=number, repo=repo, html_url=f"https://github.com/{repo}/runs/{number}")
        self.check_runs.append(run)
        return web.json_response(run, status=201)

    async def get_user(self, request, body, login):
        if login not in self.users:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response({"login": login, "type": "User", "bio": self.bios.get(login)})

    async def user_gists(self, request, body, login):
        if login not in self.users:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.json_response(self.gists.get(login, []))

    async def permission(self, request, body, repo, login):
        if login in self.no_such_users:
            return web.json_response({"message": "Not Found",
                                      "documentation_url": "https://docs.github.com/rest/collaborators"}, status=404)
        perm = self.permissions.get(repo, {}).get(login, "none")
        return web.json_response({"permission": perm, "user": {"login": login}})
