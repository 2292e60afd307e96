"""Assertions and environment access shared by the MCP client scripts in tests/python."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Awaitable, Callable

import anyio


class CheckFailed(Exception):
    """A check failed; the scripts print it and exit non-zero."""


def check(condition: bool, what: str, detail: Any = None, limit: int = 2000) -> None:
    """Fails with `what`, plus `detail` as JSON cut to `limit` characters."""
    if not condition:
        raise CheckFailed(what if detail is None else f"{what}: {json.dumps(detail, default=str)[:limit]}")


def env(name: str, hint: str = "") -> str:
    """A required, non-empty environment variable; `hint` says how to get it."""
    value = os.environ.get(name)
    if not value:
        raise CheckFailed(f"environment variable {name} is required{hint}")
    return value


def leaves(error: BaseException) -> list[BaseException]:
    """The real errors inside (possibly nested) exception groups raised by task groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def describe(error: BaseException, timeout_s: float) -> str:
    """One failure, for a `FAILED: ...` line."""
    if isinstance(error, CheckFailed):
        return str(error)
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s} s"
    return f"{type(error).__name__}: {error}"


def run_checks(checks: Callable[[], Awaitable[None]], timeout_s: float) -> int:
    """Runs `checks` bounded by `timeout_s`: prints "all checks passed" and returns 0, or prints
    "FAILED: <what>" on stderr for each error and returns 1 (the scripts' exit code)."""

    async def bounded() -> None:
        with anyio.fail_after(timeout_s):
            await checks()

    try:
        anyio.run(bounded)
    except Exception as error:  # noqa: BLE001 - any SDK error (e.g. schema validation) is a failure
        for leaf in leaves(error):
            print(f"FAILED: {describe(leaf, timeout_s)}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0
