"""Drives omniroute_test_combo as an MCP 2025-11-25 (experimental) task, over stdio or
Streamable HTTP, with raw JSON-RPC: the official Python SDK (`mcp` 2.3) has no client for the
2025-11-25 tasks, but it ships that revision's wire types (`mcp_types._v2025_11_25`), and every
answer here is validated against them.

Flow (the fake gateway holds every completion until the test releases them):
  initialize 2025-11-25 -> capabilities.tasks; tools/list -> test_combo taskSupport "optional";
  tools/call + task -> CreateTaskResult (working); tasks/get, tasks/list; tasks/cancel ->
  cancelled, tasks/result -> error; a tool without task support -> -32601; a second task,
  then the file RELEASE_FILE is created (the Rust test releases the completions) ->
  tasks/get until completed -> tasks/result = the CallToolResult with the related-task _meta.

Environment:
  TRANSPORT            stdio | http
  ARRIVED_FILE         created by the test once the first task's four completions are held
  RELEASE_FILE         created when the completions may be answered
  COMBO                the six-step combo's name
  stdio: OMNIROUTE_MCP_BIN, OMNIROUTE_MCP_DATA_DIR, OMNIROUTE_BASE_URL, OMNIROUTE_API_KEY
  http:  MCP_URL, OMNIROUTE_MCP_TOKEN

Exits 0 when every check passed; otherwise prints "FAILED: <what>" and exits 1.
Run by tests/tests/tasks.rs.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import httpx2 as httpx
from mcp_types import _v2025_11_25 as wire

from checks import check, env, run_checks

TIMEOUT_S = 90
VERSION = "2025-11-25"
TEST_COMBO = "omniroute_test_combo"
RELATED = "io.modelcontextprotocol/related-task"


class Stdio:
    """Newline-delimited JSON-RPC over the server's stdin/stdout."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self.buffer = b""

    async def send(self, message: dict[str, Any]) -> None:
        await self.process.stdin.send((json.dumps(message) + "\n").encode())

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        while True:
            while b"\n" not in self.buffer:
                self.buffer += await self.process.stdout.receive()
            line, self.buffer = self.buffer.split(b"\n", 1)
            answer = json.loads(line)
            if answer.get("id") == message["id"]:
                return answer


class Http:
    """POSTs to /mcp in one legacy session; answers as JSON or SSE."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str) -> None:
        self.client, self.url, self.session = client, url, None
        self.headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}

    async def send(self, message: dict[str, Any]) -> None:
        await self.post(message)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        answer = await self.post(message)
        check(answer is not None, f"no JSON-RPC answer to {message['method']}")
        return answer

    async def post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        headers = dict(self.headers)
        if self.session:
            headers["mcp-session-id"] = self.session
            headers["mcp-protocol-version"] = VERSION
        response = await self.client.post(self.url, json=message, headers=headers)
        check(response.status_code in (200, 202), f"HTTP {response.status_code} for {message['method']}", response.text)
        self.session = response.headers.get("mcp-session-id", self.session)
        if response.status_code == 202 or not response.text.strip():
            return None
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            for event in response.text.split("\n\n"):
                data = "\n".join(l[5:].lstrip() for l in event.splitlines() if l.startswith("data:"))
                if data.strip():
                    parsed = json.loads(data)
                    if parsed.get("id") == message.get("id"):
                        return parsed
            return None
        return response.json()


class Client:
    def __init__(self, transport: Stdio | Http) -> None:
        self.transport, self.next_id = transport, 0

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return await self.transport.request(message)

    async def ok(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.call(method, params)
        check("result" in answer, f"{method} failed", answer)
        return answer["result"]


async def flow(client: Client, transport: Stdio | Http) -> None:
    init = await client.ok("initialize", {
        "protocolVersion": VERSION,
        "capabilities": {"tasks": {"list": {}, "cancel": {}}},
        "clientInfo": {"name": "tasks-2025-test", "version": "0"},
    })
    result = wire.InitializeResult.model_validate(init)
    check(result.protocol_version == VERSION, "the server agreed on 2025-11-25", init)
    tasks_capability = result.capabilities.tasks
    check(tasks_capability is not None and tasks_capability.requests is not None
          and tasks_capability.requests.tools is not None and tasks_capability.requests.tools.call is not None,
          "capabilities.tasks.requests.tools.call is advertised", init)
    check(tasks_capability.list is not None and tasks_capability.cancel is not None, "tasks list and cancel advertised", init)
    await transport.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    tools = wire.ListToolsResult.model_validate(await client.ok("tools/list"))
    support = {t.name: (t.execution.task_support if t.execution else None) for t in tools.tools}
    check(support.get(TEST_COMBO) == "optional", "test_combo may run as a task", support)
    check(support.get("omniroute_get_health") is None, "get_health declares no task support", support)

    args = {"comboId": env("COMBO"), "testPrompt": "Say hello"}
    created = wire.CreateTaskResult.model_validate(
        await client.ok("tools/call", {"name": TEST_COMBO, "arguments": args, "task": {"ttl": 60000}}))
    first = created.task
    check(first.status == "working", "a new task is working", created.model_dump(by_alias=True))
    check(first.ttl is not None and first.ttl > 0 and (first.poll_interval or 0) > 0, "ttl and pollInterval", first.model_dump(by_alias=True))
    got = wire.GetTaskResult.model_validate(await client.ok("tasks/get", {"taskId": first.task_id}))
    check(got.status == "working", "tasks/get: working while the completions are held", got.model_dump(by_alias=True))
    listed = wire.ListTasksResult.model_validate(await client.ok("tasks/list"))
    check(any(t.task_id == first.task_id for t in listed.tasks), "tasks/list shows the task", listed.model_dump(by_alias=True))

    with anyio.fail_after(30):
        while not os.path.exists(env("ARRIVED_FILE")):
            await anyio.sleep(0.02)
    cancelled = wire.CancelTaskResult.model_validate(await client.ok("tasks/cancel", {"taskId": first.task_id}))
    check(cancelled.status == "cancelled", "tasks/cancel answers the cancelled task", cancelled.model_dump(by_alias=True))
    no_result = await client.call("tasks/result", {"taskId": first.task_id})
    check("error" in no_result and "cancelled" in no_result["error"]["message"], "a cancelled task has no result", no_result)

    refused = await client.call("tools/call", {"name": "omniroute_get_health", "arguments": {}, "task": {}})
    check(refused.get("error", {}).get("code") == -32601, "a tool without task support is -32601 as a task", refused)
    unknown = await client.call("tasks/get", {"taskId": "task_unknown"})
    check("error" in unknown, "an unknown task is an error", unknown)

    second = wire.CreateTaskResult.model_validate(
        await client.ok("tools/call", {"name": TEST_COMBO, "arguments": args, "task": {}})).task
    open(env("RELEASE_FILE"), "w").close()
    with anyio.fail_after(60):
        while True:
            status = wire.GetTaskResult.model_validate(await client.ok("tasks/get", {"taskId": second.task_id}))
            if status.status != "working":
                break
            await anyio.sleep((status.poll_interval or 500) / 1000)
    check(status.status == "completed", "the second task completed", status.model_dump(by_alias=True))
    raw = await client.ok("tasks/result", {"taskId": second.task_id})
    wire.GetTaskPayloadResult.model_validate(raw)
    call = wire.CallToolResult.model_validate(raw)
    check(not call.is_error, "test_combo succeeded", raw)
    check((call.structured_content or {}).get("summary", {}).get("successful") == 6, "all six steps answered", raw)
    check((call.meta or {}).get(RELATED, {}).get("taskId") == second.task_id, "the result names its task", raw)
    print(f"ok: {os.environ['TRANSPORT']}: task cancelled and task completed through the 2025-11-25 wire")


async def run() -> None:
    if env("TRANSPORT") == "stdio":
        command = [env("OMNIROUTE_MCP_BIN"), "--data-dir", env("OMNIROUTE_MCP_DATA_DIR")]
        scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTE_")}
        scrubbed.update({"OMNIROUTE_BASE_URL": env("OMNIROUTE_BASE_URL"), "OMNIROUTE_API_KEY": env("OMNIROUTE_API_KEY"),
                         "OMNIROUTE_MCP_LOG": "warn"})
        async with await anyio.open_process(command, env=scrubbed, stderr=sys.stderr) as process:
            transport = Stdio(process)
            try:
                await flow(Client(transport), transport)
            finally:
                await process.stdin.aclose()
    else:
        async with httpx.AsyncClient(timeout=60) as http:
            transport = Http(http, env("MCP_URL"), env("OMNIROUTE_MCP_TOKEN"))
            await flow(Client(transport), transport)


if __name__ == "__main__":
    sys.exit(run_checks(run, TIMEOUT_S))
