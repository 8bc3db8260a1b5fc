"""One module per group of commands; each has `register(app)` and imports the library lazily.

symbols: symbols · fetch_batch: fetch-batch · pipeline: run-local, rerun-failed · load: load
status: status · aws: deploy, destroy · quality: check, backfill, chart · compact: compact
"""

COMMAND_MODULES = ("symbols", "fetch_batch", "pipeline", "load", "status", "aws", "quality", "compact")
