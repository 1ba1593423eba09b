"""`python -m jobs.provenance index | check | selftest`: see jobs.provenance.cli."""

from jobs.provenance.cli import main

raise SystemExit(main())
