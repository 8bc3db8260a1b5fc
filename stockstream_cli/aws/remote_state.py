"""What exists in the account, read once: the only place planning talks to AWS, and only to read.

Every read goes through `RemoteState.read` (or `.pages`), which refuses anything but Get/Describe/List/Head
operations and caches each answer, so planning a deploy, then the destroy, then the deploy again costs each
read once, and a plan can be built with no permission to change anything.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import aws_error, aws_error_code

__all__ = ["READ_ONLY_PREFIXES", "AbsentState", "RemoteState", "aws_error"]

READ_ONLY_PREFIXES = ("Get", "Describe", "List", "Head")
_READ_METHODS = tuple(p.lower() + "_" for p in READ_ONLY_PREFIXES)


class RemoteState:
    """Cached reads of one account and region through one boto3 session."""

    def __init__(self, session):
        self.session = session
        self._clients: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def read(self, service: str, operation: str, *, missing: tuple[str, ...] = (), **params: Any) -> Any:
        """The response, or None when AWS answers with one of the `missing` error codes."""
        if not operation.startswith(_READ_METHODS):
            raise ValueError(f"RemoteState reads only: {service}.{operation} is not a read")
        key = json.dumps([service, operation, params], sort_keys=True, default=str)
        if key not in self._cache:
            try:
                self._cache[key] = getattr(self.client(service), operation)(**params)
            except Exception as exc:
                if aws_error_code(exc) in missing:
                    self._cache[key] = None
                elif hasattr(exc, "response"):
                    raise aws_error(exc, f"reading {service} ({operation})") from None
                else:
                    raise
        return self._cache[key]

    def pages(self, service: str, operation: str, result_key: str, **params: Any) -> list:
        """Every item of a paginated list operation."""
        if not operation.startswith(_READ_METHODS):
            raise ValueError(f"RemoteState reads only: {service}.{operation} is not a read")
        key = json.dumps([service, operation, result_key, params], sort_keys=True, default=str)
        if key not in self._cache:
            try:
                paginator = self.client(service).get_paginator(operation)
                self._cache[key] = [item for page in paginator.paginate(**params) for item in page.get(result_key, [])]
            except Exception as exc:
                if hasattr(exc, "response"):
                    raise aws_error(exc, f"reading {service} ({operation})") from None
                raise
        return self._cache[key]

    def forget(self) -> None:
        """Drop every cached answer (after the executor changed things)."""
        self._cache.clear()

    # ------------------------------------------------------------ reads several planners share

    def state_machine_arn(self, name: str) -> str | None:
        for machine in self.pages("stepfunctions", "list_state_machines", "stateMachines"):
            if machine["name"] == name:
                return machine["stateMachineArn"]
        return None

    def function(self, name: str) -> dict | None:
        return self.read("lambda", "get_function", missing=("ResourceNotFoundException",), FunctionName=name)

    def role(self, name: str) -> dict | None:
        found = self.read("iam", "get_role", missing=("NoSuchEntity",), RoleName=name)
        return found["Role"] if found else None


class AbsentState(RemoteState):
    """An account read as empty, with no credentials and no call: every resource missing, every list empty
    (what `deploy --dry-run` plans against when it cannot read the account)."""

    def read(self, service: str, operation: str, *, missing: tuple[str, ...] = (), **params: Any) -> Any:
        if not operation.startswith(_READ_METHODS):
            raise ValueError(f"RemoteState reads only: {service}.{operation} is not a read")
        return None if missing else {}

    def pages(self, service: str, operation: str, result_key: str, **params: Any) -> list:
        return []
