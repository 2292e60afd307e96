"""Two nodes as one (issue 13), through the official Python MCP SDK's default `Client` (it speaks
2026-07-28: no initialize, no session): two `serve --http` processes sharing one PostgreSQL.

set_budget_guard on node A mints a handle; route_request with that handle alternates B, A, B, ...
until the guard blocks; get_session_snapshot with the handle on either node shows the one guard and
every completion. Each completion costs COST; the block guard of 2.5 x COST lets exactly three
through (0, COST and 2 x COST spent are under it) and refuses the fourth.

Environment: URL_A, URL_B (each node's /mcp), OMNIROUTE_MCP_TOKEN (the tenant's bearer token),
COST (USD per completion). Prints "all checks passed" when every check passed. Run by
tests/tests/state_nodes.rs.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from mcp.client.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

import checks
from checks import check, run_checks

TIMEOUT_S = 120
MODERN = "2026-07-28"
BLOCKED = "Budget guard blocked the request"
ALLOWED = 3


def env(name: str) -> str:
    return checks.env(name, hint=": run the test through `cargo xtask test`")


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


async def ok(client: Client, who: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    check(not result.is_error, f"{who}: {name} returned an error", text_of(result))
    check(isinstance(result.structured_content, dict), f"{who}: {name} returned no structured content", text_of(result))
    return result.structured_content


async def alternate() -> None:
    cost = float(env("COST"))
    budget = 2.5 * cost
    async with AsyncExitStack() as stack:
        clients = {}
        for name, var in (("A", "URL_A"), ("B", "URL_B")):
            http = await stack.enter_async_context(create_mcp_http_client(headers={"Authorization": f"Bearer {env('OMNIROUTE_MCP_TOKEN')}"}))
            client = await stack.enter_async_context(Client(streamable_http_client(env(var), http_client=http)))
            check(client.protocol_version == MODERN, f"node {name}: the default Client speaks {MODERN}", client.protocol_version)
            clients[name] = client

        guard = await ok(clients["A"], "A", "omniroute_set_budget_guard", {"maxCost": budget, "action": "block"})
        handle = guard["sessionId"]
        check(isinstance(handle, str) and handle.startswith("sh_"), "a handle", guard)

        sent = 0
        for i in range(ALLOWED + 2):
            node = "B" if i % 2 == 0 else "A"
            arguments = {"model": "coding-fast", "messages": [{"role": "user", "content": f"nodes {time.time_ns()}"}], "sessionId": handle}
            result = await clients[node].call_tool("omniroute_route_request", arguments)
            if result.is_error:
                check(BLOCKED in text_of(result), f"node {node}: the refusal is the guard's", text_of(result))
                break
            sent += 1
        check(sent == ALLOWED, f"exactly {ALLOWED} completions fit the guard across both nodes", sent)

        for node in ("A", "B"):
            snapshot = await ok(clients[node], node, "omniroute_get_session_snapshot", {"sessionId": handle})
            check(snapshot["requestCount"] == ALLOWED, f"node {node}: one ledger with every completion", snapshot)
            check(close(snapshot["costTotal"], round(ALLOWED * cost, 10)), f"node {node}: costTotal", snapshot)
            guard_seen = snapshot["budgetGuard"]
            check(guard_seen is not None and guard_seen["action"] == "block" and close(guard_seen["limit"], budget), f"node {node}: the one guard", snapshot)
        print(f"ok: alternating nodes: {sent} completions, then blocked; both nodes show one guard and one ledger")


MODES = {"alternate": alternate}

if __name__ == "__main__":
    mode = os.environ.get("MODE", "alternate")
    if mode not in MODES:
        print(f"FAILED: the mode must be one of {', '.join(MODES)}, got {mode!r}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_checks(MODES[mode], TIMEOUT_S))
