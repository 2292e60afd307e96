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
// * beforeResponse replaces the access token by an opaque one (random, not a JWT) when the
//   token request has the test-only form field test_opaque=1, remembering its claims;
// * beforeRevoke (RFC 7009, POST /revoke token=…) marks a token revoked;
// * beforeIntrospect answers RFC 7662 requests for the tokens this server issued: active with
//   their claims until they expire or are revoked, else inactive; the caller must authenticate
//   as the introspection client INTROSPECTION_CLIENT (HTTP Basic), else 401.
//
// Test routes on the same port: GET /test/stats ({ jwks_fetches, introspections }), POST
// /test/rotate (adds a new RS256 key to the JWKS; the token endpoint then signs with the keys
// in turn).
//
// Usage: node authorization-server.mjs  → prints "issuer http://127.0.0.1:PORT" on stdout.

import crypto from 'node:crypto';
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
const revoked = new Set(); // access tokens revoked through /revoke
const INTROSPECTION_CLIENT = 'mcp-server:introspection-secret';
let jwksFetches = 0;
let introspections = 0;

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

service.on(Events.BeforeResponse, (response, req) => {
  const token = response.body?.access_token;
  if (typeof token === 'string') {
    const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    if (req.body?.test_opaque === '1') {
      const opaque = `opaque_${crypto.randomBytes(24).toString('hex')}`;
      response.body.access_token = opaque;
      issued.set(opaque, payload);
    } else {
      issued.set(token, payload);
    }
  }
});

service.on(Events.BeforeRevoke, (_response, req) => {
  const token = req.body?.token;
  if (typeof token === 'string') revoked.add(token);
});

service.on(Events.BeforeIntrospect, (response, req) => {
  introspections += 1;
  const basic = req.headers.authorization?.startsWith('Basic ')
    ? Buffer.from(req.headers.authorization.slice(6), 'base64').toString()
    : undefined;
  if (basic !== INTROSPECTION_CLIENT) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client' };
    return;
  }
  const token = req.body?.token;
  const payload = typeof token === 'string' && !revoked.has(token) ? issued.get(token) : undefined;
  const now = Math.floor(Date.now() / 1000);
  response.body = payload && payload.exp > now ? { active: true, ...payload } : { active: false };
});

service.addRoute('GET', '/test/stats', (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jwks_fetches: jwksFetches, introspections }));
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
  if (req.method === 'POST' && (route === '/introspect' || route === '/revoke')) {
    // The mock's introspection and revocation handlers read no body; the hooks need the token.
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
