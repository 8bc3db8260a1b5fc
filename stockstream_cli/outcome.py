"""How a piece of work ended, as the library reports it: complete, partial or failed.

The library returns an Outcome and never an exit code; cli.py alone maps outcomes (and domain errors) to the
process's exit codes, so a Lambda handler or a Python caller reads the same answer without a number that
only means something to a shell. No typer or rich here.
"""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    COMPLETE = "complete"  # everything asked for was done
    PARTIAL = "partial"  # some of it failed, and is recorded so rerun-failed (or the same command) can finish it
    FAILED = "failed"  # nothing useful was done


def worst(outcomes: "list[Outcome]") -> Outcome:
    """Several pieces of work as one: FAILED when all failed, PARTIAL when any fell short, else COMPLETE."""
    if outcomes and all(outcome is Outcome.FAILED for outcome in outcomes):
        return Outcome.FAILED
    return Outcome.COMPLETE if all(outcome is Outcome.COMPLETE for outcome in outcomes) else Outcome.PARTIAL
