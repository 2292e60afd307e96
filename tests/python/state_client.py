"""Session state that survives the stateless protocol (issue 13), through the official Python MCP
SDK (`mcp` 2.x) against the REAL plain OmniRoute gateway that `cargo xtask test` starts.

Each completion of `coding-fast` costs SMALL_COST (mock-small, 7 tokens in, 3 out); a block guard
of BUDGET lets exactly two through (0 and SMALL_COST spent are under it, 2 x SMALL_COST is not),
and refuses the third before anything reaches the upstream.

MODE (environment):
  http-modern   The default `Client` (it negotiates 2026-07-28: no initialize, no session) over
                Streamable HTTP as tenant A: set_budget_guard mints a handle; route_request with the
                handle until the guard blocks; get_session_snapshot with the handle shows the guard
                and every completion; the default session (no handle) saw none of it. Tenant B
                passing A's handle: "sessionId not found", nothing sent, B's state unchanged.
                Prints `handle: <sessionId>` for a later `http-after-restart` run.
  http-after-restart
                The same server data folder after a restart: HANDLE (env) still names A's
                session, with its guard and its two completions; a third completion is still
                refused without reaching the upstream.
  http-legacy   `ClientSession` (the initialize handshake; an Mcp-Session-Id): the session's state
                without passing any handle; its handle, passed by a second, stateless client,
                names the same state.
  stdio         The default `Client` over stdio: the process is one session, so the guard and
                ledger hold without a handle; the handle names the same state.

Environment:
  OMNIROUTE_MCP_URL                        the HTTP server's /mcp (http-* modes)
  OMNIROUTE_MCP_TOKEN, OMNIROUTE_MCP_TOKEN_B  tenant A's and tenant B's bearer tokens (http-* modes)
  HANDLE                                   http-after-restart: the handle the first run printed
  OMNIROUTE_MCP_BIN, OMNIROUTE_MCP_TOOLS_DIR, OMNIROUTE_MCP_DATA_DIR   stdio mode
  OMNIROUTE_TEST_GATEWAY_URL, OMNIROUTE_TEST_GATEWAY_API_KEY           stdio mode
  OMNIROUTE_TEST_GATEWAY_MOCK_URL          the mock upstream (GET /__stats)
  OMNIROUTE_MCP_CACHE_DIR                  compiled-component cache (optional, stdio mode)

Exits 0 and prints "all checks passed" when every check passed; otherwise prints
"FAILED: <what>" to stderr and exits 1. Run by tests/tests/state_sessions.rs.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import urllib.request
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from mcp import ClientSession, StdioServerParameters
from mcp.client.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

import checks
from checks import check, run_checks

TIMEOUT_S = 120
SMALL_COST = 0.0000285  # 7 in x 1.5 + 3 out x 6 per 1M tokens
BUDGET = 0.00005  # two completions fit under it, a third does not
ALLOWED = 2
BLOCKED = "Budget guard blocked the request"
NOT_FOUND = "sessionId not found"
MODERN = "2026-07-28"


def env(name: str) -> str:
    return checks.env(name, hint=": run `cargo xtask test`, which starts the real gateway")


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def chat_requests() -> int:
    with urllib.request.urlopen(env("OMNIROUTE_TEST_GATEWAY_MOCK_URL") + "/__stats", timeout=10) as response:
        return int(json.loads(response.read())["chatRequests"])


def messages() -> list[dict[str, str]]:
    # A unique prompt: the gateway's cache must not answer it.
    return [{"role": "user", "content": f"state test {time.time_ns()}"}]


class Calls:
    """call_ok / call_error over either client kind (both have call_tool)."""

    def __init__(self, client: Any, who: str) -> None:
        self.client = client
        self.who = who

    async def ok(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(name, arguments)
        check(not result.is_error, f"{self.who}: {name} returned an error", text_of(result))
        structured = result.structured_content
        check(isinstance(structured, dict), f"{self.who}: {name} returned no structured content", text_of(result))
        return structured

    async def error(self, name: str, arguments: dict[str, Any]) -> str:
        result = await self.client.call_tool(name, arguments)
        check(result.is_error is True, f"{self.who}: {name} must fail", text_of(result))
        return text_of(result)


def with_handle(arguments: dict[str, Any], handle: str | None) -> dict[str, Any]:
    return {**arguments, "sessionId": handle} if handle else arguments


async def spend_until_blocked(c: Calls, handle: str | None) -> int:
    """route_request until the guard blocks; returns how many went through. The refused one
    must not reach the upstream."""
    sent = 0
    for _ in range(ALLOWED + 3):
        before = chat_requests()
        result = await c.client.call_tool("omniroute_route_request", with_handle({"model": "coding-fast", "messages": messages()}, handle))
        if result.is_error:
            text = text_of(result)
            check(BLOCKED in text, f"{c.who}: the refusal is the guard's", text)
            check(chat_requests() == before, f"{c.who}: nothing reached the upstream when blocked")
            return sent
        routed = result.structured_content
        check(close(routed["routing"]["cost"], SMALL_COST), f"{c.who}: completion cost", routed)
        sent += 1
    raise checks.CheckFailed(f"{c.who}: the guard never blocked after {sent} completions")


def check_snapshot(snapshot: dict[str, Any], completions: int, who: str) -> None:
    check(snapshot["requestCount"] == completions, f"{who}: every completion is in the ledger", snapshot)
    check(close(snapshot["costTotal"], round(completions * SMALL_COST, 10)), f"{who}: costTotal", snapshot)
    guard = snapshot["budgetGuard"]
    check(guard is not None and guard["action"] == "block" and close(guard["limit"], BUDGET), f"{who}: the guard", snapshot)
    check(close(guard["spent"], round(completions * SMALL_COST, 10)), f"{who}: the guard's spent", snapshot)


@asynccontextmanager
async def modern_http(token_var: str) -> AsyncIterator[Calls]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {env(token_var)}"}) as http:
        async with Client(streamable_http_client(env("OMNIROUTE_MCP_URL"), http_client=http)) as client:
            check(client.protocol_version == MODERN, "the default Client speaks 2026-07-28", client.protocol_version)
            yield Calls(client, token_var)


async def http_modern() -> None:
    async with modern_http("OMNIROUTE_MCP_TOKEN") as a:
        guard = await a.ok("omniroute_set_budget_guard", {"maxCost": BUDGET, "action": "block"})
        handle = guard["sessionId"]
        check(isinstance(handle, str) and handle.startswith("sh_") and len(handle) == 43, "a handle", guard)
        check(guard["status"] == "active" and guard["budgetSpent"] == 0, "a fresh guard", guard)
        print(f"ok: set_budget_guard minted {handle[:9]}…")

        sent = await spend_until_blocked(a, handle)
        check(sent == ALLOWED, f"exactly {ALLOWED} completions fit the budget", sent)
        snapshot = await a.ok("omniroute_get_session_snapshot", {"sessionId": handle})
        check_snapshot(snapshot, sent, "A with the handle")
        report = await a.ok("omniroute_cost_report", {"period": "session", "sessionId": handle})
        check(close(report["totalCost"], round(sent * SMALL_COST, 10)), "cost_report period=session with the handle", report)
        default = await a.ok("omniroute_get_session_snapshot", {})
        check(default["requestCount"] == 0 and default["budgetGuard"] is None, "A's default session saw none of it", default)
        print(f"ok: stateless client: {sent} completions, then blocked; the snapshot with the handle shows them and the guard")

    async with modern_http("OMNIROUTE_MCP_TOKEN_B") as b:
        before = chat_requests()
        refused = await b.error("omniroute_get_session_snapshot", {"sessionId": handle})
        check(refused.startswith("Error: " + NOT_FOUND) or refused.startswith(NOT_FOUND), "B: A's handle is not found", refused)
        check(handle[9:] not in refused, "the refusal does not repeat the handle", refused)
        refused = await b.error("omniroute_route_request", {"model": "coding-fast", "messages": messages(), "sessionId": handle})
        check(NOT_FOUND in refused, "B cannot spend through A's handle", refused)
        refused = await b.error("omniroute_set_budget_guard", {"maxCost": 1, "action": "alert", "sessionId": handle})
        check(NOT_FOUND in refused, "B cannot replace A's guard", refused)
        check(chat_requests() == before, "nothing was sent for B")
        own = await b.ok("omniroute_get_session_snapshot", {})
        check(own["requestCount"] == 0 and own["budgetGuard"] is None, "B's state is unchanged", own)
        print("ok: tenant B passing A's handle: not found, nothing sent, B unchanged")

    async with modern_http("OMNIROUTE_MCP_TOKEN") as a:
        again = await a.ok("omniroute_get_session_snapshot", {"sessionId": handle})
        check_snapshot(again, ALLOWED, "A after B's attempts")
    print(f"handle: {handle}")


async def http_after_restart() -> None:
    handle = env("HANDLE")
    async with modern_http("OMNIROUTE_MCP_TOKEN") as a:
        snapshot = await a.ok("omniroute_get_session_snapshot", {"sessionId": handle})
        check_snapshot(snapshot, ALLOWED, "A after the restart")
        sent = await spend_until_blocked(a, handle)
        check(sent == 0, "the restarted server still blocks: the spend survived", sent)
        print("ok: after a restart the handle keeps its guard, its ledger and its spend")


async def http_legacy() -> None:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {env('OMNIROUTE_MCP_TOKEN')}"}) as http:
        async with streamable_http_client(env("OMNIROUTE_MCP_URL"), http_client=http) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            c = Calls(session, "legacy session")
            guard = await c.ok("omniroute_set_budget_guard", {"maxCost": BUDGET, "action": "block"})
            handle = guard["sessionId"]
            check(handle.startswith("sh_"), "the session's handle", guard)
            sent = await spend_until_blocked(c, None)
            check(sent == ALLOWED, f"exactly {ALLOWED} completions fit the budget", sent)
            snapshot = await c.ok("omniroute_get_session_snapshot", {})
            check_snapshot(snapshot, sent, "the legacy session without a handle")
            same = await c.ok("omniroute_get_session_snapshot", {"sessionId": handle})
            check_snapshot(same, sent, "the legacy session with its handle")
            print(f"ok: legacy ClientSession: {sent} completions, then blocked; the session's snapshot shows them")
    async with modern_http("OMNIROUTE_MCP_TOKEN") as other:
        snapshot = await other.ok("omniroute_get_session_snapshot", {"sessionId": handle})
        check_snapshot(snapshot, ALLOWED, "a stateless client with the legacy session's handle")
        print("ok: the legacy session's handle names the same state from a stateless client")


async def stdio() -> None:
    args = ["--tools-dir", env("OMNIROUTE_MCP_TOOLS_DIR"), "--data-dir", env("OMNIROUTE_MCP_DATA_DIR")]
    if os.environ.get("OMNIROUTE_MCP_CACHE_DIR"):
        args += ["--cache-dir", os.environ["OMNIROUTE_MCP_CACHE_DIR"]]
    server = StdioServerParameters(
        command=env("OMNIROUTE_MCP_BIN"),
        args=args,
        env={"OMNIROUTE_BASE_URL": env("OMNIROUTE_TEST_GATEWAY_URL"), "OMNIROUTE_API_KEY": env("OMNIROUTE_TEST_GATEWAY_API_KEY")},
    )
    async with Client(server) as client:
        c = Calls(client, f"stdio ({client.protocol_version})")
        guard = await c.ok("omniroute_set_budget_guard", {"maxCost": BUDGET, "action": "block"})
        handle = guard["sessionId"]
        sent = await spend_until_blocked(c, None)
        check(sent == ALLOWED, f"exactly {ALLOWED} completions fit the budget", sent)
        check_snapshot(await c.ok("omniroute_get_session_snapshot", {}), sent, "stdio without a handle")
        check_snapshot(await c.ok("omniroute_get_session_snapshot", {"sessionId": handle}), sent, "stdio with the handle")
        print(f"ok: stdio ({client.protocol_version}): {sent} completions, then blocked; one session for the process")


MODES = {"http-modern": http_modern, "http-after-restart": http_after_restart, "http-legacy": http_legacy, "stdio": stdio}

if __name__ == "__main__":
    mode = os.environ.get("MODE", "")
    if mode not in MODES:
        print(f"FAILED: the mode must be one of {', '.join(MODES)}, got {mode!r}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_checks(MODES[mode], TIMEOUT_S))
