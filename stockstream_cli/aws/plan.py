"""A deploy or destroy plan, as data: steps, each a message and the AWS calls that carry it out.

A `Call` is (service, operation, params): the boto3 client method and its arguments, exactly. Where a later
call needs what an earlier one returns (the ARN of a role or function just created), the earlier call names an
output variable and the later one's params hold `${var:NAME}` in its place; the executor fills it in. So
`--dry-run` and `--json` show the very calls `deploy` would make, and a test compares a plan with a list.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Union


def var(name: str) -> str:
    """A reference to an output variable, as it appears inside a later call's params."""
    return f"${{var:{name}}}"


@dataclasses.dataclass(frozen=True)
class Call:
    service: str  # boto3 client name: "lambda", "iam", ...
    operation: str  # client method: "create_function"
    params: dict[str, Any]
    output: tuple[str, str] | None = None  # (variable, dotted path in the response), e.g. ("role.lambda", "Role.Arn")
    role_propagation: bool = False  # may fail while an IAM role this run created propagates: retry that only
    absent_ok: tuple[str, ...] = ()  # error codes meaning the thing is already gone (destroy)

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"service": self.service, "operation": self.operation, "params": self.params}
        if self.output:
            document["output"] = {"variable": self.output[0], "from": self.output[1]}
        return document


@dataclasses.dataclass(frozen=True)
class Wait:
    """A boto3 waiter: the function is ready before the next call on it (Lambda refuses calls mid-update)."""

    service: str
    waiter: str
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "waiter": self.waiter, "params": self.params}


@dataclasses.dataclass(frozen=True)
class BuildImage:
    """Build infra/Dockerfile and push it: the one step that is not an AWS call (planned, never run, by --dry-run)."""

    image_uri: str
    arch: str

    def as_dict(self) -> dict[str, Any]:
        return {"build": {"image_uri": self.image_uri, "arch": self.arch}}


Instruction = Union[Call, Wait, BuildImage]


@dataclasses.dataclass(frozen=True)
class Step:
    action: str  # create | update | delete
    resource: str  # e.g. "lambda function"
    name: str
    details: tuple[str, ...]
    instructions: tuple[Instruction, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "resource": self.resource, "name": self.name, "details": list(self.details),
                "calls": [i.as_dict() for i in self.instructions]}

    @property
    def calls(self) -> list[Call]:
        return [i for i in self.instructions if isinstance(i, Call)]


def step(action: str, resource: str, name: str, details, *instructions: Instruction) -> Step:
    return Step(action, resource, name, tuple(details), tuple(instructions))


def step_from_dict(document: dict[str, Any]) -> Step:
    """The inverse of Step.as_dict (the CLI renders the --json document's steps)."""
    instructions: list[Instruction] = []
    for item in document.get("calls", []):
        if "build" in item:
            instructions.append(BuildImage(**item["build"]))
        elif "waiter" in item:
            instructions.append(Wait(item["service"], item["waiter"], item["params"]))
        else:
            output = item.get("output")
            instructions.append(Call(item["service"], item["operation"], item["params"],
                                     output=(output["variable"], output["from"]) if output else None))
    return Step(document["action"], document["resource"], document["name"], tuple(document["details"]), tuple(instructions))


def calls_of(steps: list[Step]) -> list[Call]:
    return [call for s in steps for call in s.calls]


VERBS = {"create": "+ create", "update": "~ update", "delete": "- delete"}


def render(steps: list[Step], *, calls: bool = True, width: int = 110, verbs: dict[str, str] = VERBS) -> list[str]:
    """The plan as text: one line per step, and under it each call with its params shortened."""
    lines = []
    for s in steps:
        details = f": {'; '.join(s.details)}" if s.details else ""
        lines.append(f"{verbs[s.action]} {s.resource} {s.name}{details}")
        if calls:
            lines.extend(f"    {_render_instruction(i, width)}" for i in s.instructions)
    return lines


def _render_instruction(instruction: Instruction, width: int) -> str:
    if isinstance(instruction, BuildImage):
        return f"build and push {instruction.image_uri} ({instruction.arch}) -- would build"
    if isinstance(instruction, Wait):
        return f"wait {instruction.service}.{instruction.waiter}({_params(instruction.params, width)})"
    text = f"{instruction.service}.{instruction.operation}({_params(instruction.params, width)})"
    if instruction.output:
        text += f" -> {var(instruction.output[0])}"
    return text


def _params(params: dict[str, Any], width: int) -> str:
    parts = []
    for key, value in params.items():
        shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 3] + "..."
