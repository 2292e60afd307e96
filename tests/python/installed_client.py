"""Starts omniroute-mcp the way an installed package starts it (npx, a wheel's console script,
a bare binary, an MCPB manifest's command) and drives it with the official Python MCP SDK: the
legacy handshake (`ClientSession`), tools/list, then omniroute_get_health against the gateway.

Environment:
  INSTALLED_COMMAND  JSON list: the command and its arguments (required)
  INSTALLED_ENV      JSON object: environment for the server, over the SDK's default one
                     (HOME, PATH, ...) (required; must set OMNIROUTE_BASE_URL)
  INSTALLED_CWD      the server's working folder (optional)
  EXPECTED_TOOLS     how many tools tools/list must hold (required)

Prints one "ok:" line per check (the last one has the timings); exits 1 with "FAILED: <what>".
Run by tests/tests/dist.rs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from checks import check, env, run_checks

TIMEOUT_S = 120
HEALTH = "omniroute_get_health"


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def run() -> None:
    command = json.loads(env("INSTALLED_COMMAND"))
    server = StdioServerParameters(
        command=command[0],
        args=command[1:],
        env=json.loads(env("INSTALLED_ENV")),
        cwd=os.environ.get("INSTALLED_CWD") or None,
    )
    expected = int(env("EXPECTED_TOOLS"))
    started = time.monotonic()
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        check(init.server_info.name == "omniroute-mcp", "serverInfo.name", init.server_info.name)
        listed = await session.list_tools()
        listed_at = time.monotonic()
        names = sorted(tool.name for tool in listed.tools)
        check(len(names) == expected, f"tools/list must hold {expected} tools", names)
        check(HEALTH in names, f"tools/list lacks {HEALTH}", names)
        print(f"ok: {init.server_info.name} {init.server_info.version} lists {len(names)} tools")

        result = await session.call_tool(HEALTH, {})
        health_at = time.monotonic()
        check(not result.is_error, f"{HEALTH} returned an error", text_of(result))
        structured = result.structured_content
        check(isinstance(structured, dict) and structured.get("status") == "healthy", f"{HEALTH} status", structured)
        print(
            f"ok: {HEALTH}: status {structured['status']}; "
            f"start+initialize+tools/list {1000 * (listed_at - started):.0f} ms, first call {1000 * (health_at - listed_at):.0f} ms"
        )


def main() -> int:
    return run_checks(run, TIMEOUT_S)


if __name__ == "__main__":
    sys.exit(main())
