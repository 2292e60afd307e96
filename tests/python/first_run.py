"""`cargo xtask run` on a machine where no gateway answers, driven by the official Python MCP SDK.

The server command is the xtask binary itself: `xtask run --no-build --default-url DEFAULT_URL --
--data-dir DIR`. With no gateway URL set and nothing at DEFAULT_URL, xtask starts (or reuses) the
project's demo gateway and serves MCP on stdio against it. Two sessions, each a fresh `xtask run`:
the SDK's default `Client` (MCP 2026-07-28 `server/discover`, falling back to the initialize
handshake) and a `ClientSession` over `stdio_client` (the initialize handshake). Each calls
omniroute_get_health, which must answer healthy with a version; the versions are printed as
`health version (<client>): <version>` for the Rust test to compare with the gateway's own.

Environment:
  XTASK_BIN               the xtask binary (required)
  DEFAULT_URL             the URL xtask probes as the default gateway: a closed port (required)
  OMNIROUTE_MCP_DATA_DIR  the server's data dir (required)
  OMNIROUTE_MCP_CACHE, XDG_CACHE_HOME  passed on to xtask when set (where the gateway is installed)

Exits 0 when every check passed; otherwise prints "FAILED: <what>" to stderr and exits 1.
Run by tests/tests/first_run.rs. xtask's and the server's stderr pass through to this stderr.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from checks import check, env, run_checks

# Reusing the running demo gateway takes seconds; starting it, up to a minute.
TIMEOUT_S = 240
HEALTH = "omniroute_get_health"
PASSED_ON = ("OMNIROUTE_MCP_CACHE", "XDG_CACHE_HOME")


def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def server() -> StdioServerParameters:
    passed_on = {name: os.environ[name] for name in PASSED_ON if os.environ.get(name)}
    return StdioServerParameters(
        command=env("XTASK_BIN"),
        args=[
            "run",
            "--no-build",
            "--default-url",
            env("DEFAULT_URL"),
            "--",
            "--data-dir",
            env("OMNIROUTE_MCP_DATA_DIR"),
        ],
        env=passed_on,
    )


def check_health(result: Any, client: str) -> None:
    check(not result.is_error, f"{client}: {HEALTH} returned an error", text_of(result))
    health = result.structured_content
    check(isinstance(health, dict), f"{client}: {HEALTH} returned no structured content", text_of(result))
    check(json.loads(text_of(result)) == health, f"{client}: text content differs from structuredContent")
    check(health.get("status") == "healthy", f"{client}: health status", health)
    version = health.get("version")
    check(isinstance(version, str) and version != "", f"{client}: health version", health)
    check(health.get("degraded") == [], f"{client}: degraded must be empty", health)
    print(f"health version ({client}): {version}")


async def with_default_client() -> None:
    async with Client(server()) as client:
        print(f"ok: Client connected, protocol {client.protocol_version}")
        check_health(await client.call_tool(HEALTH, {}), "Client")


async def with_client_session() -> None:
    async with stdio_client(server()) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        check(init.server_info.name == "omniroute-mcp", "serverInfo.name", init.server_info.name)
        print(f"ok: ClientSession initialized, protocol {init.protocol_version}")
        check_health(await session.call_tool(HEALTH, {}), "ClientSession")


async def both_clients() -> None:
    await with_default_client()
    await with_client_session()


if __name__ == "__main__":
    sys.exit(run_checks(both_clients, TIMEOUT_S))
