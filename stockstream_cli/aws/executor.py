"""The one place a plan's calls are made: in order, output variables filled in, waiters run.

Two refusals are transient and retried, a bounded number of times with waits growing to 10 s (`sleep` is
injected, so tests wait for nothing), as Terraform's AWS provider retries them:
- a call marked `role_propagation`, while AWS refuses it with IAM's "not yet usable" messages, and only when
  this run created the role it passes or changed that role's policy (real IAM takes seconds to show a new
  role or policy everywhere: Lambda cannot assume it yet, Step Functions cannot deliver logs with it yet);
- any call answered `StateMachineDeleting`: a state machine of that name is still going away (a destroy just
  before this deploy).
Anything else (an image Lambda does not support, a bad parameter) fails at once with AWS's own message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from ..errors import AwsError, aws_error_code
from .plan import BuildImage, Call, Step, Wait
from .remote_state import aws_error

TRANSIENT_TRIES = 12  # waits of 2, 3, 4.5, 6.75, then 10 s: about 86 s in all
# What Lambda, Step Functions and EventBridge say while a new role (or its new policy) has not reached them yet.
PROPAGATION_MESSAGES = re.compile(
    r"role defined for the function cannot be assumed|cannot be assumed by Lambda|"
    r"is not authorized to assume the provided role|not authorized to perform: sts:AssumeRole|"
    r"Neither the global service principal|The execution role you provide must allow|"
    r"The IAM Role is not authorized to access the Log Destination", re.IGNORECASE)
# Error codes that mean "not yet": the same call succeeds once AWS has finished what it is doing.
TRANSIENT_CODES = {"StateMachineDeleting"}
_VAR = re.compile(r"\$\{var:([A-Za-z0-9_.\-]+)\}")


def resolve(value: Any, variables: dict[str, str]) -> Any:
    """`value` with every ${var:NAME} replaced by what an earlier call returned."""
    if isinstance(value, str):
        def lookup(match: re.Match) -> str:
            if match.group(1) not in variables:
                raise AwsError(f"plan error: {match.group(0)} is used before any call set it")
            return variables[match.group(1)]
        return _VAR.sub(lookup, value)
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    return value


def _dig(response: dict, path: str) -> str:
    for part in path.split("."):
        response = response[part]
    return response


class Executor:
    def __init__(self, session, *, sleep: Callable[[float], None] = time.sleep, waiter_delay: int = 5,
                 build_image: Callable[[BuildImage, Any], None] | None = None):
        self.session = session
        self.sleep = sleep
        self.waiter_delay = waiter_delay
        self.build_image = build_image
        self.variables: dict[str, str] = {}
        self.created_roles: set[str] = set()  # created, or their policy put, by this run: they may propagate
        self._clients: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def execute(self, steps: list[Step], on_step: Callable[[Step], None] | None = None) -> None:
        for s in steps:
            if on_step:
                on_step(s)
            for instruction in s.instructions:
                try:
                    self._run(instruction)
                except AwsError:
                    raise
                except Exception as exc:
                    if not hasattr(exc, "response"):
                        raise
                    raise aws_error(exc, f"{s.action} {s.resource} {s.name}") from None

    def _run(self, instruction) -> None:
        if isinstance(instruction, BuildImage):
            if self.build_image is None:
                raise AwsError("the plan builds an image but no container engine was given")
            self.build_image(instruction, self.client("ecr"))
        elif isinstance(instruction, Wait):
            self._wait(instruction)
        else:
            self._call(instruction)

    def _call(self, call: Call) -> None:
        params = resolve(call.params, self.variables)
        method = getattr(self.client(call.service), call.operation)
        wait = 2.0
        for attempt in range(TRANSIENT_TRIES):
            try:
                response = method(**params)
                break
            except Exception as exc:
                if aws_error_code(exc) and aws_error_code(exc) in call.absent_ok:
                    return
                if attempt == TRANSIENT_TRIES - 1 or not self._transient(call, params, exc):
                    raise
                self.sleep(wait)
                wait = min(wait * 1.5, 10.0)
        if call.service == "iam" and call.operation in ("create_role", "put_role_policy"):
            self.created_roles.add(params["RoleName"])
        if call.output:
            self.variables[call.output[0]] = _dig(response, call.output[1])

    def _transient(self, call: Call, params: dict, exc: Exception) -> bool:
        """Whether AWS's refusal means "not yet" (see the module's docstring)."""
        if aws_error_code(exc) in TRANSIENT_CODES:
            return True
        return call.role_propagation and self._uses_a_new_role(params) and bool(PROPAGATION_MESSAGES.search(str(exc)))

    def _uses_a_new_role(self, params: dict) -> bool:
        """Whether the call passes a role this run created (only such a role can still be propagating)."""
        text = json.dumps(params, default=str)
        return any(f":role/{name}\"" in text for name in self.created_roles)

    def _wait(self, wait: Wait) -> None:
        params = resolve(wait.params, self.variables)
        try:
            self.client(wait.service).get_waiter(wait.waiter).wait(
                **params, WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": 120})
        except Exception as exc:
            raise AwsError(f"{wait.service} {params} did not become ready: {exc}") from None
