// A real OAuth 2 / OpenID Connect authorization server for the OAuth tests:
// oauth2-mock-server (installed by `cargo xtask test` into the cache, found through
// OAUTH2_MOCK_SERVER_DIR), with hooks so each test case gets the token it needs.
//
// Out of the box the mock ignores `resource`, gives every token the same `sub`, sets no
// `aud` on authorization-code tokens and forgets the scopes a client authorized, so without
// these hooks the audience, subject and scope checks would test nothing:
//
// * beforeAuthorizeRedirect remembers each code's `scope` and `resource`;
// * beforeTokenSigning sets `aud` to the requested `resource` (RFC 8707), `client_id` to the
//   client, the code's scope on authorization-code tokens, and honours test-only form fields
//   of client-credentials requests: test_sub, test_aud, test_exp (seconds from now, may be
//   negative), test_nbf (likewise), test_kid (a header kid the signing key does not have);
// * beforeIntrospect answers RFC 7662 requests for the tokens this server issued.
//
// Test routes on the same port: GET /test/stats ({ jwks_fetches }), POST /test/rotate (adds
// a new RS256 key to the JWKS; the token endpoint then signs with the keys in turn).
//
// Usage: node authorization-server.mjs  → prints "issuer http://127.0.0.1:PORT" on stdout.

import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.OAUTH2_MOCK_SERVER_DIR;
if (!dir) {
  console.error('OAUTH2_MOCK_SERVER_DIR must name the oauth2-mock-server package folder (cargo xtask test sets it)');
  process.exit(2);
}
const { OAuth2Server, Events } = await import(pathToFileURL(path.join(dir, 'dist', 'index.mjs')).href);

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
const service = server.service;

const codes = new Map(); // code -> { scope, resource }
const issued = new Map(); // access token -> payload (for introspection)
let jwksFetches = 0;

service.on(Events.BeforeAuthorizeRedirect, (redirect, req) => {
  const code = redirect.url.searchParams.get('code');
  if (code) codes.set(code, { scope: req.query.scope, resource: req.query.resource });
});

service.on(Events.BeforeTokenSigning, (token, req) => {
  const body = req.body ?? {};
  const now = Math.floor(Date.now() / 1000);
  const fromCode = typeof body.code === 'string' ? codes.get(body.code) : undefined;
  const resource = body.resource ?? fromCode?.resource;
  if (typeof resource === 'string') token.payload.aud = resource;
  if (fromCode?.scope !== undefined && body.scope === undefined) token.payload.scope = fromCode.scope;
  const basic = req.headers.authorization?.startsWith('Basic ')
    ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString().split(':')[0]
    : undefined;
  const client = basic ?? body.client_id;
  if (client) token.payload.client_id = decodeURIComponent(client);
  if (body.test_sub !== undefined) token.payload.sub = body.test_sub;
  if (body.test_aud !== undefined) token.payload.aud = body.test_aud;
  if (body.test_exp !== undefined) token.payload.exp = now + Number(body.test_exp);
  if (body.test_nbf !== undefined) token.payload.nbf = now + Number(body.test_nbf);
  if (body.test_kid !== undefined) token.header.kid = body.test_kid;
});

service.on(Events.BeforeResponse, (response) => {
  const token = response.body?.access_token;
  if (typeof token === 'string') {
    const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    issued.set(token, payload);
  }
});

service.on(Events.BeforeIntrospect, (response, req) => {
  const token = req.body?.token;
  const payload = typeof token === 'string' ? issued.get(token) : undefined;
  const now = Math.floor(Date.now() / 1000);
  response.body = payload && payload.exp > now ? { active: true, ...payload } : { active: false };
});

service.addRoute('GET', '/test/stats', (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jwks_fetches: jwksFetches }));
});

service.addRoute('POST', '/test/rotate', async (_req, res) => {
  const key = await server.issuer.keys.generate('RS256');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kid: key.kid }));
});

const handler = service.requestHandler;
const httpServer = http.createServer((req, res) => {
  const route = req.url?.split('?')[0];
  if (req.method === 'GET' && route === '/jwks') jwksFetches += 1;
  if (req.method === 'POST' && route === '/introspect') {
    // The mock's introspection handler reads no body; the hook needs the token.
    let text = '';
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      req.body = Object.fromEntries(new URLSearchParams(text));
      handler(req, res);
    });
    return;
  }
  handler(req, res);
});
httpServer.listen(0, '127.0.0.1', () => {
  const { port } = httpServer.address();
  server.issuer.url = `http://127.0.0.1:${port}`;
  console.log(`issuer ${server.issuer.url}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
// Ends with the test that started it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
