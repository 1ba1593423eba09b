"""The fake GitHub's GraphQL endpoint: a subset of GitHub's real schema (the names, types, unions and
interfaces the bot uses), parsed, validated and executed by graphql-core, so a query GitHub would refuse (an
unknown field, a missing fragment on a union, a connection without `first`) is refused here too, with GitHub's
error shape: HTTP 200 and an `errors` list."""

from __future__ import annotations

import base64
from typing import Any

from graphql import GraphQLError, build_schema, graphql

SDL = """
scalar DateTime
scalar URI
scalar GitObjectID
scalar Date

interface Node { id: ID! }

type Query {
  search(query: String!, type: SearchType!, first: Int, after: String, last: Int, before: String): SearchResultItemConnection!
  organization(login: String!): Organization
  user(login: String!): User
  node(id: ID!): Node
}

type Mutation {
  updateProjectV2ItemFieldValue(input: UpdateProjectV2ItemFieldValueInput!): UpdateProjectV2ItemFieldValuePayload
}

enum SearchType { ISSUE REPOSITORY USER DISCUSSION }
enum PullRequestState { OPEN CLOSED MERGED }
enum ProjectV2ItemType { ISSUE PULL_REQUEST DRAFT_ISSUE REDACTED }
enum ProjectV2FieldType { ASSIGNEES DATE ITERATION LABELS LINKED_PULL_REQUESTS MILESTONE NUMBER REPOSITORY
  REVIEWERS SINGLE_SELECT TEXT TITLE TRACKS }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! endCursor: String startCursor: String }

type SearchResultItemConnection { issueCount: Int! nodes: [SearchResultItem] pageInfo: PageInfo! }
union SearchResultItem = Issue | PullRequest | Repository

type Repository implements Node { id: ID! name: String! nameWithOwner: String! }
type Issue implements Node { id: ID! number: Int! title: String! url: URI! repository: Repository! }
type Label { name: String! }
type LabelConnection { nodes: [Label] totalCount: Int! pageInfo: PageInfo! }
type Commit implements Node { id: ID! oid: GitObjectID! }

type PullRequest implements Node {
  id: ID!
  number: Int!
  title: String!
  url: URI!
  state: PullRequestState!
  merged: Boolean!
  mergedAt: DateTime
  mergeCommit: Commit
  baseRefName: String!
  headRefName: String!
  isDraft: Boolean!
  repository: Repository!
  labels(first: Int, after: String, last: Int, before: String): LabelConnection
}

type Organization implements Node { id: ID! login: String! projectV2(number: Int!): ProjectV2 }
type User implements Node { id: ID! login: String! projectV2(number: Int!): ProjectV2 }

type ProjectV2 implements Node {
  id: ID!
  number: Int!
  title: String!
  fields(first: Int, after: String, last: Int, before: String): ProjectV2FieldConfigurationConnection!
  items(first: Int, after: String, last: Int, before: String): ProjectV2ItemConnection!
}

interface ProjectV2FieldCommon { id: ID! name: String! dataType: ProjectV2FieldType! }
type ProjectV2Field implements ProjectV2FieldCommon & Node { id: ID! name: String! dataType: ProjectV2FieldType! }
type ProjectV2SingleSelectFieldOption { id: String! name: String! }
type ProjectV2SingleSelectField implements ProjectV2FieldCommon & Node {
  id: ID! name: String! dataType: ProjectV2FieldType! options: [ProjectV2SingleSelectFieldOption!]!
}
union ProjectV2FieldConfiguration = ProjectV2Field | ProjectV2SingleSelectField
type ProjectV2FieldConfigurationConnection { nodes: [ProjectV2FieldConfiguration] pageInfo: PageInfo! totalCount: Int! }

type DraftIssue implements Node { id: ID! title: String! }
union ProjectV2ItemContent = DraftIssue | Issue | PullRequest
type ProjectV2ItemFieldSingleSelectValue { name: String optionId: String field: ProjectV2FieldConfiguration! }
type ProjectV2ItemFieldTextValue { text: String field: ProjectV2FieldConfiguration! }
union ProjectV2ItemFieldValue = ProjectV2ItemFieldSingleSelectValue | ProjectV2ItemFieldTextValue
type ProjectV2ItemFieldValueConnection { nodes: [ProjectV2ItemFieldValue] pageInfo: PageInfo! totalCount: Int! }
type ProjectV2Item implements Node {
  id: ID!
  type: ProjectV2ItemType!
  isArchived: Boolean!
  content: ProjectV2ItemContent
  fieldValues(first: Int, after: String, last: Int, before: String): ProjectV2ItemFieldValueConnection!
  fieldValueByName(name: String!): ProjectV2ItemFieldValue
}
type ProjectV2ItemConnection { nodes: [ProjectV2Item] pageInfo: PageInfo! totalCount: Int! }

input ProjectV2FieldValue { text: String number: Float date: Date singleSelectOptionId: String iterationId: String }
input UpdateProjectV2ItemFieldValueInput {
  clientMutationId: String projectId: ID! itemId: ID! fieldId: ID! value: ProjectV2FieldValue!
}
type UpdateProjectV2ItemFieldValuePayload { clientMutationId: String projectV2Item: ProjectV2Item }
"""


def _cursor(i: int) -> str:
    return base64.b64encode(f"cursor:{i}".encode()).decode()


def _page(items: list, first: Any, after: Any, what: str, last: Any = None) -> dict:
    """A connection page, refused as GitHub refuses it: `first` or `last` required, at most 100."""
    if first is None and last is None:
        raise GraphQLError(f"You must provide a `first` or `last` value to properly paginate the `{what}` connection.")
    n = first if first is not None else last
    if not 0 <= n <= 100:
        raise GraphQLError(f"Requesting {n} records on the `{what}` connection exceeds the `first` limit of "
                           "100 records.")
    start = 0
    if after:
        try:
            start = int(base64.b64decode(after).decode().split(":", 1)[1]) + 1
        except Exception:
            raise GraphQLError(f"`{after}` does not appear to be a valid cursor.")
    chunk = items[start:start + n]
    end = start + len(chunk) - 1
    return {"nodes": chunk, "totalCount": len(items), "issueCount": len(items),
            "pageInfo": {"hasNextPage": start + n < len(items), "hasPreviousPage": start > 0,
                         "endCursor": _cursor(end) if chunk else None, "startCursor": _cursor(start) if chunk else None}}


def search_terms(query: str) -> list[tuple[str, str]]:
    """GitHub's search qualifiers: `key:value`, `key:"quoted value"`, and `key:"a","b"` (any of them; the
    alternatives come back joined by a unit separator), and bare words."""
    out, i = [], 0
    while i < len(query):
        if query[i] == " ":
            i += 1
            continue
        j = i
        while j < len(query) and query[j] not in ' :"':
            j += 1
        key = ""
        if j < len(query) and query[j] == ":":
            key, i = query[i:j], j + 1
        values = []
        while True:
            if i < len(query) and query[i] == '"':
                end = query.find('"', i + 1)
                end = len(query) if end < 0 else end
                values.append(query[i + 1:end])
                i = end + 1
            else:
                end = i
                while end < len(query) and query[end] not in " ,":
                    end += 1
                values.append(query[i:end])
                i = end
            if i < len(query) and query[i] == ",":
                i += 1
                continue
            break
        out.append((key.lower(), "\x1f".join(values)))
    return out


class GraphQLFake:
    """Projects (v2) boards and the search the bot uses, over the REST fake's pulls and labels."""

    def __init__(self, rest):
        self.rest = rest
        self.projects: dict[tuple[str, str, int], dict] = {}
        self.nodes: dict[str, dict] = {}
        self.mutations: list[dict] = []
        self._ids = 0
        self.schema = build_schema(SDL)           # one per fake: the resolvers below are this fake's
        t = self.schema.type_map
        t["Query"].fields["search"].resolve = self.search
        t["Query"].fields["organization"].resolve = lambda _o, _i, login: {"__typename": "Organization", "id": f"O_{login}",
                                                                          "login": login, "_kind": "orgs"}
        t["Query"].fields["user"].resolve = lambda _o, _i, login: {"__typename": "User", "id": f"U_{login}",
                                                                  "login": login, "_kind": "users"}
        t["Query"].fields["node"].resolve = lambda _o, _i, id: self.nodes.get(id)
        for owner in ("Organization", "User"):
            t[owner].fields["projectV2"].resolve = self.project
        t["ProjectV2"].fields["fields"].resolve = lambda p, _i, first=None, after=None, last=None, before=None: \
            _page(p["_fields"], first, after, "fields", last)
        t["ProjectV2"].fields["items"].resolve = lambda p, _i, first=None, after=None, last=None, before=None: \
            _page([self._item(x) for x in p["_items"]], first, after, "items", last)
        t["ProjectV2Item"].fields["fieldValues"].resolve = lambda it, _i, first=None, after=None, last=None, \
            before=None: _page(it["_values"], first, after, "fieldValues", last)
        t["ProjectV2Item"].fields["fieldValueByName"].resolve = lambda it, _i, name: next(
            (v for v in it["_values"] if v["field"]["name"] == name), None)
        t["PullRequest"].fields["labels"].resolve = lambda pr, _i, first=None, after=None, last=None, before=None: \
            _page(pr["_labels"], first, after, "labels", last)
        t["Mutation"].fields["updateProjectV2ItemFieldValue"].resolve = self.update_field

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids:06d}"

    # --- test set-up ---------------------------------------------------------------------------------
    def add_project(self, owner: str, number: int, *, kind: str = "orgs", columns=("Todo", "To be backported",
                    "In Progress", "Done"), status_field: str = "Status", release_field: str = "Release") -> dict:
        status = {"__typename": "ProjectV2SingleSelectField", "id": self._id("PVTSSF"), "name": status_field,
                  "dataType": "SINGLE_SELECT", "options": [{"id": self._id("opt"), "name": c} for c in columns]}
        release = {"__typename": "ProjectV2Field", "id": self._id("PVTF"), "name": release_field, "dataType": "TEXT"}
        title = {"__typename": "ProjectV2Field", "id": self._id("PVTF"), "name": "Title", "dataType": "TITLE"}
        project = {"__typename": "ProjectV2", "id": self._id("PVT"), "number": number, "title": f"Board {number}",
                   "_fields": [title, status, release], "_items": []}
        self.projects[(kind, owner, number)] = project
        self.nodes[project["id"]] = project
        return project

    def add_item(self, project: dict, repo: str, number: int, *, status: str, release: str = "") -> dict:
        item = {"__typename": "ProjectV2Item", "id": self._id("PVTI"), "type": "PULL_REQUEST", "isArchived": False,
                "_repo": repo, "_number": number, "_project": project, "_values": []}
        self._set(item, project["_fields"][1], status)
        if release:
            item["_values"].append({"__typename": "ProjectV2ItemFieldTextValue", "text": release,
                                    "field": project["_fields"][2]})
        project["_items"].append(item)
        self.nodes[item["id"]] = item
        return item

    def status_of(self, item: dict) -> str | None:
        for v in item["_values"]:
            if v["field"]["name"] == item["_project"]["_fields"][1]["name"]:
                return v["name"]
        return None

    def _set(self, item: dict, field: dict, option_name: str) -> None:
        option = next(o for o in field["options"] if o["name"] == option_name)
        item["_values"] = [v for v in item["_values"] if v["field"]["id"] != field["id"]]
        item["_values"].append({"__typename": "ProjectV2ItemFieldSingleSelectValue", "name": option["name"],
                                "optionId": option["id"], "field": field})

    # --- resolvers -----------------------------------------------------------------------------------
    def _pull(self, repo: str, number: int) -> dict | None:
        pr = self.rest.pulls.get(repo, {}).get(number)
        if pr is None:
            return None
        state = "MERGED" if pr.get("merged") else pr["state"].upper()
        labels = [{"name": n} for n in self.rest.labels.get(repo, {}).get(number, [])]
        merge = pr.get("merge_commit_sha")
        return {"__typename": "PullRequest", "id": f"PR_{repo}#{number}", "number": number, "title": pr["title"],
                "url": pr["html_url"], "state": state, "merged": bool(pr.get("merged")), "mergedAt": pr.get("merged_at"),
                "mergeCommit": {"id": f"C_{merge}", "oid": merge} if merge and pr.get("merged") else None,
                "baseRefName": pr["base"]["ref"], "headRefName": pr["head"]["ref"], "isDraft": bool(pr.get("draft")),
                "repository": {"id": f"R_{repo}", "name": repo.split("/")[1], "nameWithOwner": repo},
                "_labels": labels}

    def _item(self, item: dict) -> dict:
        return dict(item, content=self._pull(item["_repo"], item["_number"]))

    def project(self, owner, _info, number):
        return self.projects.get((owner["_kind"], owner["login"], number))

    def search(self, _root, _info, query, type, first=None, after=None, last=None, before=None):
        if type != "ISSUE":
            raise GraphQLError("the fake searches issues and pull requests only")
        terms = search_terms(query)
        repos = [v for k, v in terms if k == "repo"]
        labels = [set(v.lower().split("\x1f")) for k, v in terms if k == "label"]
        out = []
        for repo in repos or list(self.rest.pulls):
            for number, pr in sorted(self.rest.pulls.get(repo, {}).items(), reverse=True):
                have = {x.lower() for x in self.rest.labels.get(repo, {}).get(number, [])}
                if ("is", "merged") in terms and not pr.get("merged"):
                    continue
                if ("is", "open") in terms and pr["state"] != "open":
                    continue
                if any(not (alternatives & have) for alternatives in labels):
                    continue
                base = [v for k, v in terms if k == "base"]
                if base and pr["base"]["ref"] not in base:
                    continue
                out.append(self._pull(repo, number))
        return _page(out, first, after, "search", last)

    def update_field(self, _root, _info, input):
        self.mutations.append(input)
        project = self.nodes.get(input["projectId"])
        item = self.nodes.get(input["itemId"])
        for given, node in ((input["projectId"], project), (input["itemId"], item)):
            if node is None:
                raise GraphQLError(f"Could not resolve to a node with the global id of '{given}'")
        if item.get("_project") is not project:
            raise GraphQLError("The item does not exist in the project")
        field = next((f for f in project["_fields"] if f["id"] == input["fieldId"]), None)
        if field is None:
            raise GraphQLError(f"Could not resolve to a node with the global id of '{input['fieldId']}'")
        option_id = input["value"].get("singleSelectOptionId")
        option = next((o for o in field.get("options", []) if o["id"] == option_id), None)
        if option is None:
            raise GraphQLError("The single select option Id does not belong to the field")
        self._set(item, field, option["name"])
        return {"clientMutationId": input.get("clientMutationId"), "projectV2Item": self._item(item)}

    async def execute(self, body: dict) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
        result = await graphql(self.schema, body["query"], variable_values=body.get("variables") or None)
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [{"type": "INVALID" if e.path is None else "UNPROCESSABLE", "message": e.message,
                              "locations": [{"line": loc.line, "column": loc.column} for loc in (e.locations or [])],
                              **({"path": list(e.path)} if e.path else {})} for e in result.errors]
        return out
