"""Assertions and environment access shared by the MCP client scripts in tests/python."""

from __future__ import annotations

import json
import os
from typing import Any


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
