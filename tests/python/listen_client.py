"""Plugins arriving after start reach an MCP 2026-07-28 client through `subscriptions/listen`.

The official Python SDK's default `Client` negotiates 2026-07-28 (stateless, no initialized
notification to hang a session on). The server is started with a plugin folder whose first
plugins spin in `describe()` until their CPU budget stops them, then a good plugin: the client
sees the built-ins at once, listens for tool-list changes, and finds the good plugin listed
after the change event.

Environment:
  OMNIROUTE_MCP_BIN        the server binary (required)
  OMNIROUTE_MCP_TOOLS_DIR  the built-in tool components folder (required)
  OMNIROUTE_BASE_URL       the (fake) gateway the server talks to (required)
  OMNIROUTE_MCP_PLUGINS    the plugin folder (required)
  EXPECT_PLUGIN            the plugin that must arrive (required)
  OMNIROUTE_MCP_DATA_DIR   the server's data dir (optional; a temp dir otherwise)
  OMNIROUTE_MCP_CACHE_DIR  a warm precompiled cache (optional): a server that compiles every
                           component before answering may start too slowly for the SDK's
                           discovery, which then falls back to an older protocol

Exits 0 when every check passed; otherwise prints "FAILED: <what>" to stderr and exits 1.
Run by tests/tests/plugins.rs.
"""

from __future__ import annotations

import os
import sys
import tempfile

from mcp import StdioServerParameters
from mcp.client.client import Client
from mcp.client.subscriptions import ToolsListChanged

from checks import check, env, run_checks

TIMEOUT_S = 60
HEALTH = "omniroute_get_health"


async def run(data_dir: str) -> None:
    plugin = env("EXPECT_PLUGIN")
    args = ["--tools-dir", env("OMNIROUTE_MCP_TOOLS_DIR"), "--data-dir", data_dir, "--plugins", env("OMNIROUTE_MCP_PLUGINS")]
    if os.environ.get("OMNIROUTE_MCP_CACHE_DIR"):
        args += ["--cache-dir", os.environ["OMNIROUTE_MCP_CACHE_DIR"]]
    server = StdioServerParameters(command=env("OMNIROUTE_MCP_BIN"), args=args, env={"OMNIROUTE_BASE_URL": env("OMNIROUTE_BASE_URL")})
    async with Client(server) as client:
        first = [tool.name for tool in (await client.list_tools()).tools]
        check(HEALTH in first, "the built-ins are listed at once", first)
        check(plugin not in first, f"{plugin} must arrive after the spinning describe() calls, not before", first)
        print(f"ok: {len(first)} tools listed at once, {plugin} not yet")
        async with client.listen(tools_list_changed=True) as subscription:
            async for event in subscription:
                if isinstance(event, ToolsListChanged):
                    break
        print("ok: a tool-list change arrived through subscriptions/listen")
        later = [tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools]
        check(plugin in later, f"{plugin} must be listed after the change", later)
        print(f"ok: {plugin} listed after the change")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="omniroute-mcp-py-") as scratch:
        data_dir = os.environ.get("OMNIROUTE_MCP_DATA_DIR") or scratch
        return run_checks(lambda: run(data_dir), TIMEOUT_S)


if __name__ == "__main__":
    sys.exit(main())
