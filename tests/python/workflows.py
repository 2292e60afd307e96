"""Agent workflows through the official Python MCP SDK (`mcp` 2.x) over stdio, against the REAL
OmniRoute 3.7.9 gateway that `cargo xtask test` starts (the plain instance).

Each workflow runs in its own server process, i.e. its own MCP session (fresh ledger, no budget
guard). ClientSession.call_tool validates every structuredContent against the tool's
outputSchema and raises on a mismatch, so every successful call below is also a schema check.

  a. auto-healing loop: get_health -> set_resilience_profile -> best_combo_for_task -> switch_combo
  b. budget-aware coding run: set_budget_guard(block, 0.00002 USD) -> simulate_route -> route_request
     -> get_session_snapshot, then a second route_request refused under block (nothing sent)
  c. combo benchmark: list_combos(includeMetrics) -> test_combo for each enabled combo
  d. post-mortem: route_request -> explain_route(requestId)
  e. model discovery: list_models_catalog(capability "chat"), sorted by price client-side

Environment:
  OMNIROUTE_MCP_BIN                the server binary (required)
  OMNIROUTE_MCP_TOOLS_DIR          the built-in tool components folder (required)
  OMNIROUTE_TEST_GATEWAY_URL       the real gateway (required)
  OMNIROUTE_TEST_GATEWAY_API_KEY   a gateway API key (required)
  OMNIROUTE_TEST_GATEWAY_MOCK_URL  the mock upstream (required; GET /__stats)
  OMNIROUTE_TEST_GATEWAY_NODE_ID   the mock provider node id (required)
  OMNIROUTE_TEST_GATEWAY_STATE     the gateway's state file (required; seeded combo ids)
  OMNIROUTE_MCP_CACHE_DIR          compiled-component cache for the server (optional)

Exits 0 when every check passed; otherwise prints "FAILED: <what>" to stderr and exits 1.
Run by tests/tests/python_workflows.rs.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

import checks


def check(condition: bool, what: str, detail: Any = None) -> None:
    checks.check(condition, what, detail, limit=3000)


def env(name: str) -> str:
    return checks.env(name, hint=': run `cargo xtask test`, which starts the real gateways')

TIMEOUT_S = 90  # per workflow
SMALL_COST = 0.0000285  # 7 in x 1.5 + 3 out x 6 per 1M tokens
LARGE_COST = 0.000066  # 7 in x 3 + 3 out x 15 per 1M tokens
BUDGET = 0.00002  # above a 7-token prompt estimate (0.0000105), below a real completion
BLOCK_TEXT = (
    "Error: Budget guard blocked the request: session spend 0.0000285 USD "
    "reached the limit 0.00002 USD (action=block)."
)




def close(a: Any, b: float) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a - b) < 1e-12



def text_of(result: Any) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def unique(prefix: str) -> str:
    return f"{prefix} {time.time_ns()} {os.getpid()}"


def mock_stats() -> dict[str, Any]:
    with urllib.request.urlopen(env("OMNIROUTE_TEST_GATEWAY_MOCK_URL") + "/__stats", timeout=10) as response:
        return json.loads(response.read())


def gateway_get(path: str) -> Any:
    with urllib.request.urlopen(env("OMNIROUTE_TEST_GATEWAY_URL") + path, timeout=15) as response:
        return json.loads(response.read())


class Session:
    """One MCP session with the server: call_ok / call_error on top of ClientSession."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call_ok(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.session.call_tool(name, arguments)
        check(not result.is_error, f"{name} returned an error", text_of(result))
        structured = result.structured_content
        check(isinstance(structured, dict), f"{name} returned no structured content", text_of(result))
        check(json.loads(text_of(result)) == structured, f"{name}: text content differs from structuredContent")
        return structured

    async def call_error(self, name: str, arguments: dict[str, Any]) -> str:
        result = await self.session.call_tool(name, arguments)
        check(result.is_error is True, f"{name} must fail", text_of(result))
        return text_of(result)


@asynccontextmanager
async def server_session() -> AsyncIterator[Session]:
    with tempfile.TemporaryDirectory(prefix="omniroute-mcp-wf-") as data_dir:
        args = ["--tools-dir", env("OMNIROUTE_MCP_TOOLS_DIR"), "--data-dir", data_dir]
        cache = os.environ.get("OMNIROUTE_MCP_CACHE_DIR")
        if cache:
            args += ["--cache-dir", cache]
        server = StdioServerParameters(
            command=env("OMNIROUTE_MCP_BIN"),
            args=args,
            env={
                "OMNIROUTE_BASE_URL": env("OMNIROUTE_TEST_GATEWAY_URL"),
                "OMNIROUTE_API_KEY": env("OMNIROUTE_TEST_GATEWAY_API_KEY"),
            },
        )
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "omniroute-mcp", "serverInfo.name", init.server_info.name)
            listed = await session.list_tools()
            check(len(listed.tools) == 16, "the 16 built-in tools", sorted(t.name for t in listed.tools))
            yield Session(session)


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def seeded_combos() -> dict[str, str]:
    with open(env("OMNIROUTE_TEST_GATEWAY_STATE"), encoding="utf-8") as f:
        return json.load(f)["combos"]


# ------------------------------------------------------------------------------------------


async def auto_healing_loop() -> None:
    """Read health, pick a resilience profile from it, pick the best combo for the task and
    make sure it is switched on."""
    async with server_session() as s:
        health = await s.call_ok("omniroute_get_health", {})
        check(health["status"] == "healthy", "gateway health", health)
        check(isinstance(health["uptime"], (int, float)), "uptime is a number", health)
        open_breakers = [b["provider"] for b in health["circuitBreakers"] if b["state"] == "OPEN"]
        profile = "conservative" if open_breakers else "balanced"

        applied = await s.call_ok("omniroute_set_resilience_profile", {"profile": profile})
        check(applied["applied"] is True and applied["profile"] == profile, "profile applied", applied)
        stored = gateway_get("/api/resilience")
        for section in ("requestQueue", "connectionCooldown", "providerBreaker"):
            for key, value in applied["settings"][section].items():
                if isinstance(value, dict):
                    for field, expected in value.items():
                        check(stored[section][key][field] == expected, f"gateway {section}.{key}.{field}", stored)
                else:
                    check(stored[section][key] == value, f"gateway {section}.{key}", stored)

        best = await s.call_ok("omniroute_best_combo_for_task", {"taskType": "coding"})
        recommended = best["recommendedCombo"]
        combos = seeded_combos()
        check(recommended["name"] == "coding-fast", "coding-fast is best for coding", best)
        check(recommended["id"] == combos["coding-fast"], "recommended id", best)
        check(best["freeAlternative"] == {"id": combos["free-tier"], "name": "free-tier"}, "freeAlternative", best)
        check(best["degraded"] == [], "no degraded source", best)

        switched = await s.call_ok("omniroute_switch_combo", {"comboId": recommended["id"], "active": True})
        check(switched["id"] == recommended["id"] and switched["enabled"] is True, "recommended combo enabled", switched)
        listed = await s.call_ok("omniroute_list_combos", {})
        entry = next((c for c in listed["combos"] if c["id"] == recommended["id"]), None)
        check(entry is not None and entry["enabled"] is True, "list_combos reads it enabled", listed)
        if profile != "balanced":
            # The gateway is shared with the rest of the suite: leave it as the suite expects.
            await s.call_ok("omniroute_set_resilience_profile", {"profile": "balanced"})
        print(f"ok: (a) auto-healing: profile {profile}, recommended {recommended['name']} enabled")


async def budget_aware_coding_run() -> None:
    """A tiny block budget: the prompt-only estimate fits it, the real completion (prompt and
    output) exhausts it, and the next request is refused before anything reaches the upstream."""
    limit = BUDGET
    async with server_session() as s:
        guard = await s.call_ok("omniroute_set_budget_guard", {"maxCost": limit, "action": "block"})
        check(guard["status"] == "active" and close(guard["budgetRemaining"], limit), "fresh guard", guard)

        tokens = 7
        simulated = await s.call_ok(
            "omniroute_simulate_route",
            {"model": "mock/mock-small", "promptTokenEstimate": tokens, "combo": "coding-fast"},
        )
        primary = simulated["simulatedPath"][0]
        check(primary["costBasis"] == "gateway_pricing", "priced from the gateway", simulated)
        check(close(primary["estimatedCost"], round(tokens * 1.5 / 1e6, 10)), "estimate = tokens x 1.5 / 1e6", simulated)
        check(primary["estimatedCost"] < limit, "the estimate fits the budget", simulated)

        before = mock_stats()
        routed = await s.call_ok("omniroute_route_request", {"model": "coding-fast", "messages": messages(unique("wf-b"))})
        routing = routed["routing"]
        check(close(routing["cost"], SMALL_COST), "real cost", routing)
        check(
            routed.get("warnings") == ["Budget limit reached: session spend 0.0000285 USD of 0.00002 USD."],
            "the guard warns once the limit is reached",
            routed,
        )
        sent = mock_stats()
        check(sent["chatRequests"] == before["chatRequests"] + 1, "one request reached the upstream", [before, sent])

        snapshot = await s.call_ok("omniroute_get_session_snapshot", {})
        check(snapshot["requestCount"] == 1, "one completion in the session", snapshot)
        check(close(snapshot["costTotal"], routing["cost"]), "costTotal = the routed cost", snapshot)
        guard_state = snapshot["budgetGuard"]
        check(
            guard_state["active"] is True
            and guard_state["action"] == "block"
            and close(guard_state["remaining"], 0)
            and close(guard_state["spent"], SMALL_COST)
            and close(guard_state["limit"], limit),
            "budgetGuard in the snapshot",
            snapshot,
        )

        refused = await s.call_error("omniroute_route_request", {"model": "coding-fast", "messages": messages(unique("wf-b2"))})
        check(refused == BLOCK_TEXT, "the block text", refused)
        after = mock_stats()
        check(after["chatRequests"] == sent["chatRequests"], "nothing reached the upstream when refused", [sent, after])
        again = await s.call_ok("omniroute_get_session_snapshot", {})
        check(again["requestCount"] == 1, "the refused request is not in the ledger", again)
        print(f"ok: (b) budget run: estimate {primary['estimatedCost']}, spent {snapshot['costTotal']}, second request refused")


async def combo_benchmark() -> None:
    """Benchmark every enabled combo with test_combo."""
    async with server_session() as s:
        listed = await s.call_ok("omniroute_list_combos", {"includeMetrics": True})
        check(listed["degraded"] == [], "metrics fetched", listed)
        enabled = [c for c in listed["combos"] if c["enabled"]]
        names = [c["name"] for c in enabled]
        check("coding-fast" in names and "free-tier" in names, "the seeded combos are enabled", names)
        total_cost = 0.0
        steps = 0
        for combo in enabled:
            if combo["name"] == "coding-fast":
                metrics = combo["metrics"]
                check(metrics is None or metrics["totalRequests"] >= 1, "coding-fast metrics", combo)
            result = await s.call_ok("omniroute_test_combo", {"comboId": combo["id"], "testPrompt": unique("wf-c")})
            results = result["results"]
            check(len(results) == len(combo["models"]), f"{combo['name']}: one result per step", result)
            for item, step in zip(results, combo["models"]):
                check(item["model"] == step["model"], f"{combo['name']}: combo order", result)
                check(item["success"] is True, f"{combo['name']}: {item['model']} succeeded", result)
                check(item["latencyMs"] > 0 and item["cost"] > 0 and item["tokenCount"] == 10, "real numbers", item)
            summary = result["summary"]
            check(summary["successful"] == summary["totalProviders"] == len(results), f"{combo['name']} summary", summary)
            check(close(summary["totalCost"], round(sum(i["cost"] for i in results), 10)), "summary.totalCost", summary)
            fastest = min(results, key=lambda i: i["latencyMs"])
            check(summary["fastestProvider"] == fastest["provider"], "fastestProvider", result)
            total_cost += summary["totalCost"]
            steps += len(results)
            print(f"ok:     {combo['name']}: {len(results)} step(s), fastest {fastest['latencyMs']} ms, cost {summary['totalCost']}")
        snapshot = await s.call_ok("omniroute_get_session_snapshot", {})
        check(snapshot["requestCount"] == steps, "every step is in the ledger", snapshot)
        check(close(snapshot["costTotal"], round(total_cost, 10)), "costTotal = sum of the benchmarks", snapshot)
        print(f"ok: (c) benchmark: {len(enabled)} enabled combos, {steps} steps, {snapshot['costTotal']} USD")


async def post_mortem() -> None:
    """Explain the routing of a request just sent."""
    node = env("OMNIROUTE_TEST_GATEWAY_NODE_ID")
    async with server_session() as s:
        routed = await s.call_ok(
            "omniroute_route_request",
            {"model": "coding-fast", "messages": messages(unique("wf-d")), "role": "coding"},
        )
        routing = routed["routing"]
        check(routing["provider"] == node, "served by the mock node", routing)
        explained = await s.call_ok("omniroute_explain_route", {"requestId": routing["requestId"]})
        check(explained["requestId"] == routing["requestId"], "same request", explained)
        check(explained["source"] in ("host_ledger", "host_ledger+call_logs"), "explained from this server's ledger", explained)
        decision = explained["decision"]
        check(decision["comboUsed"] == "coding-fast", "comboUsed", decision)
        check(decision["providerSelected"] == node, "providerSelected = x-omniroute-provider", decision)
        check(decision["modelUsed"] == routing["model"] == "mock-small", "modelUsed", decision)
        check(close(decision["costActual"], routing["cost"]), "costActual", decision)
        check(decision["latencyActual"] == routing["latencyMs"], "latencyActual", decision)
        check(decision["fallbacksTriggered"] == [], "no fallback", decision)
        factors = {f["name"]: f for f in decision["factors"]}
        check(list(factors) == ["health", "quota", "cost", "latency", "task_fit"], "factor order", decision)
        used = [f for f in decision["factors"] if f["value"] is not None]
        expected = round(sum(f["contribution"] for f in used) / sum(f["weight"] for f in used), 4)
        check(close(decision["score"], expected), "score from the non-null factors", decision)
        check("scoreBasis" in explained, "the score is declared post-hoc", explained)
        print(f"ok: (d) post-mortem: {explained['source']}, score {decision['score']}")


async def model_discovery() -> None:
    """Chat models, cheapest first (input + output price per 1M tokens); unpriced ones last."""
    async with server_session() as s:
        catalog = await s.call_ok("omniroute_list_models_catalog", {"capability": "chat"})
        models = catalog["models"]
        check(models and all(m["capabilities"][0] == "chat" for m in models), "chat models only", catalog)
        # 3.7.9 lists no model status: each is null, and that is the one degraded entry.
        check(
            [d["source"] for d in catalog["degraded"]] == ["GET /v1/models"]
            and "no `status`" in catalog["degraded"][0]["error"]
            and all(m["status"] is None for m in models),
            "no degraded source; the missing model status named",
            catalog,
        )

        def unit_price(model: dict[str, Any]) -> float:
            pricing = model.get("pricing")
            if not pricing:
                return math.inf
            return pricing["inputPerMillion"] + pricing["outputPerMillion"]

        ranked = sorted(models, key=unit_price)
        priced = [m for m in ranked if "pricing" in m]
        ids = [m["id"] for m in priced]
        check(ids[:2] == ["mock/mock-small", "mock/mock-large"], "the mock models, cheapest first", ids)
        check(priced[0]["pricing"] == {"inputPerMillion": 1.5, "outputPerMillion": 6}, "mock-small price", priced[0])
        check(priced[1]["pricing"] == {"inputPerMillion": 3, "outputPerMillion": 15}, "mock-large price", priced[1])
        check(all("pricing" not in m for m in ranked[len(priced):]), "unpriced last", ranked)
        combos = [m["id"] for m in models if m["provider"] == "combo"]
        check("coding-fast" in combos, "combos are chat models too", combos)
        print(f"ok: (e) discovery: {len(models)} chat models, cheapest {ids[0]} at {unit_price(priced[0])} USD/M")


WORKFLOWS = [auto_healing_loop, budget_aware_coding_run, combo_benchmark, post_mortem, model_discovery]


def main() -> int:
    failures = 0
    started = time.monotonic()
    for workflow in WORKFLOWS:

        async def bounded() -> None:
            with anyio.fail_after(TIMEOUT_S):
                await workflow()

        began = time.monotonic()
        try:
            anyio.run(bounded)
        except Exception as error:  # noqa: BLE001 - any SDK error (e.g. schema validation) is a failure
            failures += 1
            for leaf in checks.leaves(error):
                print(f"FAILED: {workflow.__name__}: {checks.describe(leaf, TIMEOUT_S)}", file=sys.stderr)
        print(f"    {workflow.__name__}: {time.monotonic() - began:.1f} s")
    if failures:
        print(f"{failures} workflow(s) failed", file=sys.stderr)
        return 1
    print(f"all workflows passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
