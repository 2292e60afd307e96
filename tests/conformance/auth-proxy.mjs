// A loopback-only forwarding proxy for `cargo xtask conformance`.
//
// The official MCP conformance client sends no Authorization header, and every
// /mcp request to omniroute-mcp needs a tenant's bearer token. Rather than add
// an unauthenticated mode to the server, xtask starts this proxy in front of it:
// it adds `Authorization: Bearer <token>` of a throwaway test tenant and
// forwards everything else unchanged (Host and Origin included, so the
// DNS-rebinding scenario still tests the server's own checks). Responses,
// SSE streams included, are piped through unbuffered.
//
// Usage: node auth-proxy.mjs <upstream-port>   (token in CONFORMANCE_BEARER)
// Prints `auth-proxy listening on http://127.0.0.1:PORT` on stdout when ready.
import http from "node:http";

const upstreamPort = Number(process.argv[2]);
const token = process.env.CONFORMANCE_BEARER;
if (!upstreamPort || !token) {
  console.error("usage: CONFORMANCE_BEARER=... node auth-proxy.mjs <upstream-port>");
  process.exit(2);
}

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  const upstream = http.request(
    { host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, up.headers);
      res.flushHeaders();
      up.on("data", (chunk) => res.write(chunk));
      up.on("end", () => res.end());
      up.on("error", () => res.destroy());
    },
  );
  upstream.on("error", (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { "content-type": "text/plain" });
    }
    res.end(`auth-proxy: upstream error: ${e.message}\n`);
  });
  // The client going away (e.g. closing an SSE stream) closes the upstream request too.
  res.on("close", () => upstream.destroy());
  req.pipe(upstream);
});

server.listen(0, "127.0.0.1", () => {
  console.log(`auth-proxy listening on http://127.0.0.1:${server.address().port}`);
});
