"""The summarize job: the key changes of a PR (or a local `base..head` range), with honest coverage.

load → (cache) → digest → model → validate → post. The digest comes from the diff alone and is always posted.
With an Anthropic key, Claude reads the digest and as much of the diff as fits a counted token budget (one call,
or at most three chunk calls whose per-file notes one final call merges). Its answer must be JSON of a fixed
shape; file names it claims must exist in the PR and have been read, or they are dropped and counted. Every
changed file is either read or named in the coverage line. Results are cached by (PR, head SHA); a later head
is summarised again, saying what changed since the last summary.
Modules: `model` (the Summarizer and its pure `check`), `report` (what is posted), `job` (the job, its
parameters and its kind)."""

from jobs.summarize.job import KIND, SummarizeParams, areas_of, budget
from jobs.summarize.model import ModelResult, Source, Summarizer, check, check_notes
from jobs.summarize.report import coverage_list, neutral, render_result

__all__ = ["KIND", "ModelResult", "Source", "SummarizeParams", "Summarizer", "areas_of", "budget", "check",
           "check_notes", "coverage_list", "neutral", "render_result"]
