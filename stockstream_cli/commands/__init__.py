"""One module per command; each has `register(app)` and imports the library lazily.

Beside them, what commands share: running.py (run-local and rerun-failed), remote.py (--remote views),
progress.py and output.py (rendering, rich). cli.py registers COMMAND_MODULES in this order.
"""

COMMAND_MODULES = ("symbols", "fetch_batch", "run_local", "rerun_failed", "load", "actions", "query", "status", "aws", "check",
                   "backfill", "chart", "compact")
