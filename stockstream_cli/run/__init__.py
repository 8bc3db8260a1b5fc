"""The state machine's semantics on one machine: a leaf of types, one batch retried, threads, worker
processes, run.json, reruns, the deployed last step, backfill and what the Lambda handlers share."""
