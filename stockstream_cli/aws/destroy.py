"""`stockstream destroy`: remove this stage's stack, everything deploy made except the data bucket.

A plan like deploy's (planner.plan_destroy: what exists, found by the stage's names, removed in the reverse of
deploy's order so nothing is left pointing at something already gone), printed by --dry-run or executed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .deploy import DeployOptions, _mutating_calls, prepare
from .plan import Step
from .planner import Plan, deployed_bucket, plan_destroy


def destroy(*, region: str | None = None, profile: str | None = None, stage: str | None = None, session=None,
            dry_run: bool = False, confirm: Callable[[Plan, str], bool] | None = None,
            on_step: Callable[[Step], None] | None = None) -> dict[str, Any]:
    """Plan the removal of this stage's stack and, unless dry_run (or `confirm` says no), execute it."""
    from .executor import Executor

    prepared = prepare(DeployOptions(region=region, profile=profile, stage=stage), session=session, need_image=False)
    plan = plan_destroy(prepared.target, prepared.remote)
    bucket = deployed_bucket(prepared.remote, prepared.target) or prepared.target.bucket
    applied = False
    if not dry_run and plan.steps and (confirm is None or confirm(plan, bucket)):
        Executor(prepared.session).execute(plan.steps, on_step)
        applied = True
    target = plan.target
    return {
        "region": target.region,
        "account": target.account,
        "stage": target.stage,
        "dry_run": dry_run,
        "removed": [s.as_dict() for s in plan.steps] if applied else [],
        "to_remove": [] if applied else [s.as_dict() for s in plan.steps],
        "mutating_calls": _mutating_calls(prepared.session),
        "kept": {"bucket": bucket, "note": "the data bucket and every object in it are kept"},
    }
