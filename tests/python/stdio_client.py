"""Drives omniroute-mcp over stdio with the official Python MCP SDK (`mcp` 2.x).

Proves that a stock client can initialize, list the tools and call them, and that every
structuredContent validates against the tool's outputSchema (ClientSession.call_tool does that
validation itself and raises on a mismatch).

Environment:
  OMNIROUTE_MCP_BIN        the server binary (required)
  OMNIROUTE_MCP_TOOLS_DIR  the built-in tool components folder (required)
  OMNIROUTE_BASE_URL       the (fake) gateway the server talks to (required)
  OMNIROUTE_MCP_DATA_DIR   the server's data dir (optional; a temp dir otherwise)

Exits 0 when every check passed; otherwise prints "FAILED: <what>" to stderr and exits 1.
Run by tests/tests/python_client.rs; can be run by hand against a real gateway too.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from checks import check, env, run_checks

TIMEOUT_S = 60
HEALTH = "omniroute_get_health"
COMBOS = "omniroute_list_combos"





def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


async def call_ok(session: ClientSession, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must succeed; the SDK has already validated the output schema."""
    result = await session.call_tool(name, arguments)
    check(not result.is_error, f"{name} returned an error", text_of(result))
    structured = result.structured_content
    check(isinstance(structured, dict), f"{name} returned no structured content", text_of(result))
    check(json.loads(text_of(result)) == structured, f"{name}: text content differs from structuredContent")
    return structured


async def run(data_dir: str) -> None:
    server = StdioServerParameters(
        command=env("OMNIROUTE_MCP_BIN"),
        args=["--tools-dir", env("OMNIROUTE_MCP_TOOLS_DIR"), "--data-dir", data_dir],
        env={"OMNIROUTE_BASE_URL": env("OMNIROUTE_BASE_URL")},
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        check(init.server_info.name == "omniroute-mcp", "serverInfo.name", init.server_info.name)
        check(init.capabilities.tools is not None, "the server must advertise tools")
        print(f"ok: initialized {init.server_info.name} {init.server_info.version}, protocol {init.protocol_version}")

        listed = await session.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        for name in (HEALTH, COMBOS):
            check(name in tools, f"tools/list lacks {name}", sorted(tools))
            tool = tools[name]
            check(bool(tool.title), f"{name} has no title")
            check(bool(tool.description), f"{name} has no description")
            check(tool.input_schema.get("type") == "object", f"{name} inputSchema", tool.input_schema)
            check(tool.output_schema is not None, f"{name} has no outputSchema")
            check(
                tool.annotations is not None and tool.annotations.read_only_hint is True,
                f"{name} must be annotated readOnlyHint",
                tool.annotations.model_dump() if tool.annotations else None,
            )
        print(f"ok: tools/list has {len(tools)} tools: {', '.join(sorted(tools))}")

        health = await call_ok(session, HEALTH, {})
        check(health.get("status") == "healthy", "health status", health)
        check(health.get("version") == "3.7.9", "health version", health)
        check(isinstance(health.get("uptime"), (int, float)), "health uptime must be a number", health)
        check(isinstance(health.get("circuitBreakers"), list) and health["circuitBreakers"], "circuitBreakers", health)
        check(isinstance(health.get("rateLimits"), list) and health["rateLimits"], "rateLimits", health)
        hit_rate = (health.get("cacheStats") or {}).get("hitRate")
        check(isinstance(hit_rate, (int, float)), "cacheStats.hitRate must be a number", health)
        check(health.get("degraded") == [], "degraded must be empty", health)
        print(f"ok: {HEALTH}: status {health['status']}, uptime {health['uptime']}")

        combos = await call_ok(session, COMBOS, {"includeMetrics": True})
        names = [c.get("name") for c in combos.get("combos", [])]
        check(names == ["coding-fast", "free-tier"], "combo names", names)
        first = combos["combos"][0]
        check(first.get("enabled") is True, "coding-fast must be enabled", first)
        check((first.get("metrics") or {}).get("totalRequests") == 5, "coding-fast metrics by name", first)
        check(combos.get("degraded") == [], "degraded must be empty", combos)
        print(f"ok: {COMBOS}: {len(names)} combos with metrics")

        invalid = await session.call_tool(COMBOS, {"includeMetrics": "yes"})
        check(invalid.is_error is True, "includeMetrics: \"yes\" must be rejected", text_of(invalid))
        check("includeMetrics" in text_of(invalid), "the error must name includeMetrics", text_of(invalid))
        print("ok: invalid arguments are an error naming the field")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="omniroute-mcp-py-") as scratch:
        data_dir = os.environ.get("OMNIROUTE_MCP_DATA_DIR") or scratch
        return run_checks(lambda: run(data_dir), TIMEOUT_S)


if __name__ == "__main__":
    sys.exit(main())
