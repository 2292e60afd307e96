"""Drives omniroute-mcp over Streamable HTTP with the official Python MCP SDK (`mcp` 2.x).

Environment:
  OMNIROUTE_MCP_URL    the server's MCP endpoint, e.g. http://127.0.0.1:8931/mcp (required)
  OMNIROUTE_MCP_TOKEN  a tenant's bearer token (required)
  EXPECT_TOOLS         comma-separated tools the tenant must see (optional)
  HIDDEN_TOOLS         comma-separated tools the tenant must NOT see (optional)

Initializes, lists the tools and calls omniroute_get_health with the bearer token; then checks
that a wrong token is refused. Exits 0 and prints "all checks passed" when every check passed;
otherwise prints "FAILED: <what>" to stderr and exits 1. Run by tests/tests/http_tenants.rs.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from checks import CheckFailed, check, env, run_checks

TIMEOUT_S = 60
HEALTH = "omniroute_get_health"





def names(var: str) -> list[str]:
    return [n for n in os.environ.get(var, "").split(",") if n]


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def run() -> None:
    url = env("OMNIROUTE_MCP_URL")
    token = env("OMNIROUTE_MCP_TOKEN")
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "omniroute-mcp", "serverInfo.name", init.server_info.name)
            check(init.capabilities.tools is not None, "the server must advertise tools")
            print(f"ok: initialized {init.server_info.name} {init.server_info.version}, protocol {init.protocol_version}")

            listed = await session.list_tools()
            tools = sorted(tool.name for tool in listed.tools)
            for name in names("EXPECT_TOOLS"):
                check(name in tools, f"tools/list lacks {name}", tools)
            for name in names("HIDDEN_TOOLS"):
                check(name not in tools, f"tools/list must not show {name}", tools)
            print(f"ok: tools/list has {len(tools)} tools: {', '.join(tools)}")

            health = await session.call_tool(HEALTH, {})
            check(not health.is_error, f"{HEALTH} returned an error", text_of(health))
            structured = health.structured_content
            check(isinstance(structured, dict) and structured.get("status") == "healthy", "health status", structured)
            print(f"ok: {HEALTH}: status {structured['status']}")

    # A wrong token never gets a session.
    refused = False
    try:
        async with create_mcp_http_client(headers={"Authorization": "Bearer not-a-token"}) as http:
            async with streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
                with anyio.fail_after(10):
                    await session.initialize()
    except BaseException as e:  # noqa: BLE001 - any failure is the expected refusal
        if isinstance(e, CheckFailed):
            raise
        refused = True
    check(refused, "a wrong bearer token must be refused")
    print("ok: a wrong bearer token is refused")


if __name__ == "__main__":
    sys.exit(run_checks(run, TIMEOUT_S))
