// Mock OpenAI-compatible upstream for the real OmniRoute 3.7.9 gateway (xtask/src/gateway).
//
// Run: node mock-upstream.mjs [--port N] [--port-file PATH]
//   port: --port, else $MOCK_PORT, else 0 (pick a free one). Listens on 127.0.0.1 only.
//   Once listening it prints `mock-upstream listening on http://127.0.0.1:<port>` on stdout and,
//   with --port-file, writes the port number to that file (atomically, via rename).
//
// Routes:
//   GET  /v1/models            the two mock models; no Authorization required
//   POST /v1/chat/completions  non-stream JSON or a 3-event SSE stream; a model ending in
//                              "fail" answers 500 {"error":{"message":"upstream failure"}}
//   anything else              404 JSON
// A request whose Authorization is `Bearer sk-mock-revoked` (REVOKED_KEY) is refused on every
// route with 401 and OpenAI's invalid_api_key error, as a provider refuses a revoked key.
// Test-only routes (never called by the gateway):
//   GET  /__stats              request counts and the last Authorization header seen (JSON)
//   POST /__reset              zeroes the counters
// No npm dependencies: node:http only.

import http from "node:http";
import fs from "node:fs";

function argValue(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const port = Number(argValue("--port") ?? process.env.MOCK_PORT ?? 0);
const portFile = argValue("--port-file") ?? process.env.MOCK_PORT_FILE;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`mock-upstream: invalid port ${port}`);
  process.exit(2);
}

const MODELS = {
  object: "list",
  data: [
    { id: "mock-small", object: "model", owned_by: "mock" },
    { id: "mock-large", object: "model", owned_by: "mock" },
  ],
};
const USAGE = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
const REVOKED_KEY = "sk-mock-revoked";
const REVOKED_ERROR = {
  error: {
    message: `Incorrect API key provided: ${REVOKED_KEY}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    type: "invalid_request_error",
    param: null,
    code: "invalid_api_key",
  },
};
const MAX_BODY = 4 * 1024 * 1024;

function freshStats() {
  return {
    startedAt: new Date().toISOString(),
    requests: 0, // every request except /__stats and /__reset
    modelsRequests: 0, // GET /v1/models
    chatRequests: 0, // POST /v1/chat/completions (including failures and bad bodies)
    streamRequests: 0, // ... of which stream:true
    failures: 0, // ... of which answered 500 (model ending in "fail")
    rejectedKeys: 0, // requests refused with 401 for carrying REVOKED_KEY (any route)
    notFound: 0,
    byModel: {}, // chat completions per model as received (without the gateway prefix)
    lastAuthorization: null, // Authorization header of the last request that carried one
    lastChatAuthorization: null, // Authorization header of the last chat completion (or null)
    lastModelsAuthorization: null, // Authorization header of the last GET /v1/models (or null)
    lastChatBody: null, // parsed body of the last chat completion
  };
}
let stats = freshStats();

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

async function chat(req, res) {
  stats.chatRequests += 1;
  const auth = req.headers["authorization"] ?? null;
  stats.lastChatAuthorization = auth;
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch (e) {
    return sendJson(res, 400, { error: { message: `invalid JSON body: ${e.message}` } });
  }
  if (body === null || typeof body !== "object") {
    return sendJson(res, 400, { error: { message: "body must be a JSON object" } });
  }
  stats.lastChatBody = body;
  const model = typeof body.model === "string" ? body.model : "";
  stats.byModel[model] = (stats.byModel[model] ?? 0) + 1;
  if (body.stream === true) stats.streamRequests += 1;

  if (model.endsWith("fail")) {
    stats.failures += 1;
    return sendJson(res, 500, { error: { message: "upstream failure" } });
  }

  const created = Math.floor(Date.now() / 1000);
  if (body.stream === true) {
    const head = { id: "chatcmpl-mock", object: "chat.completion.chunk", created, model };
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "close",
    });
    res.write(
      `data: ${JSON.stringify({
        ...head,
        choices: [
          { index: 0, delta: { role: "assistant", content: "Hello from mock" }, finish_reason: null },
        ],
      })}\n\n`,
    );
    res.write(
      `data: ${JSON.stringify({
        ...head,
        choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
        usage: USAGE,
      })}\n\n`,
    );
    res.end("data: [DONE]\n\n");
    return;
  }
  sendJson(res, 200, {
    id: "chatcmpl-mock",
    object: "chat.completion",
    created,
    model,
    choices: [
      { index: 0, message: { role: "assistant", content: "Hello from mock" }, finish_reason: "stop" },
    ],
    usage: USAGE,
  });
}

const server = http.createServer(async (req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  try {
    if (path === "/__stats" && req.method === "GET") return sendJson(res, 200, stats);
    if (path === "/__reset" && req.method === "POST") {
      stats = freshStats();
      return sendJson(res, 200, { ok: true });
    }
    stats.requests += 1;
    if (req.headers["authorization"] !== undefined) {
      stats.lastAuthorization = req.headers["authorization"];
    }
    if (req.headers["authorization"] === `Bearer ${REVOKED_KEY}`) {
      stats.rejectedKeys += 1;
      return sendJson(res, 401, REVOKED_ERROR);
    }
    if (path === "/v1/models" && req.method === "GET") {
      stats.modelsRequests += 1;
      stats.lastModelsAuthorization = req.headers["authorization"] ?? null;
      return sendJson(res, 200, MODELS);
    }
    if (path === "/v1/chat/completions" && req.method === "POST") return await chat(req, res);
    stats.notFound += 1;
    sendJson(res, 404, { error: { message: `not found: ${req.method} ${path}` } });
  } catch (e) {
    if (!res.headersSent) sendJson(res, 500, { error: { message: `mock error: ${e.message}` } });
    else res.destroy();
  }
});

server.on("error", (e) => {
  console.error(`mock-upstream: ${e.message}`);
  process.exit(1);
});

server.listen(port, "127.0.0.1", () => {
  const actual = server.address().port;
  if (portFile) {
    const tmp = `${portFile}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, String(actual));
    fs.renameSync(tmp, portFile);
  }
  console.log(`mock-upstream listening on http://127.0.0.1:${actual}`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
