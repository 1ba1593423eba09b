"""The provenance guard: is any of a change derived from the forbidden part of an upstream?

The forbidden set is defined by ancestry alone: commits reachable from `tainted` refs and not from `allowed`
ones. `index` records, for each forbidden commit, cheap-to-expensive signals in Redis/Valkey (its hash, the
upstream PR number in its subject, patch-ids, normalised hunk hashes, winnowing fingerprints with identifiers
as written and abstracted), minus anything the allowed corpus already contains. `check` computes the same for
each commit of `BASE..HEAD`, looks them up, and drops evidence our own repository had before the upstream
commit, or that postdates the PR's creation. Time order uses server-side facts (commit dates in the repos,
the PR's creation time), never text inside a diff.

    python -m jobs.provenance index
    python -m jobs.provenance check --repo PATH BASE..HEAD --json     # exit 0 clean, 1 suspect, 2 usage

Modules: `signals` (settings and what a commit's files say), `index` (the forbidden set in Redis/Valkey),
`score` (`check` and its findings), `job` (the Slack/GitHub job and its webhook trigger), `cli`.
"""

from jobs.provenance.index import Index, build_index
from jobs.provenance.job import KIND, SELFTEST, ProvenanceParams, SelftestParams, finding_text, on_pull_request
from jobs.provenance.score import Finding, OwnHistory, build_own, check, reviewed_branches
from jobs.provenance.signals import ProvConfig, ProvenanceError, load_config

__all__ = ["KIND", "SELFTEST", "SelftestParams", "Finding", "Index", "OwnHistory", "ProvConfig", "ProvenanceError", "ProvenanceParams",
           "build_index", "build_own", "check", "finding_text", "load_config", "on_pull_request",
           "reviewed_branches"]
