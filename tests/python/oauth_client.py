"""Reaches omniroute-mcp's tools through OAuth discovery with the official Python MCP SDK's OAuth
client (`mcp.client.auth.OAuthClientProvider`), against a real authorization server.

Environment:
  OMNIROUTE_MCP_URL   the server's MCP endpoint, e.g. http://127.0.0.1:8931/mcp (required)
  OAUTH_CLIENT_ID     a client id the authorization server accepts (required; pre-registered,
                      as the test's authorization server has no dynamic registration)
  EXPECT_TOOLS        comma-separated tools the token's holder must see (optional)
  HIDDEN_TOOLS        comma-separated tools it must NOT see (optional)

The client starts with no token: the server's 401 names its protected-resource metadata, the SDK
reads it, finds the authorization server's metadata, runs the authorization-code flow with PKCE
and RFC 8707 `resource` (the "browser" step is an HTTP GET of the authorization URL, whose
redirect carries the code), then retries with the access token: initialize, tools/list and
omniroute_get_health must succeed. Prints every discovery request it saw and "all checks passed".
"""

from __future__ import annotations

import os
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from checks import check, env, run_checks

TIMEOUT_S = 60
HEALTH = "omniroute_get_health"
REDIRECT = "http://127.0.0.1:9/callback"


def names(var: str) -> list[str]:
    return [n for n in os.environ.get(var, "").split(",") if n]


class Memory:
    """Token storage holding a pre-registered client and whatever tokens the flow gets."""

    def __init__(self, client_id: str) -> None:
        self.tokens: OAuthToken | None = None
        self.client = OAuthClientInformationFull(
            client_id=client_id,
            redirect_uris=[REDIRECT],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
        )

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def run() -> None:
    url = env("OMNIROUTE_MCP_URL")
    client_id = env("OAUTH_CLIENT_ID")
    redirected: dict[str, str] = {}
    seen: list[str] = []

    async def redirect_handler(authorization_url: str) -> None:
        # The user's browser: the authorization server answers with a redirect carrying the code.
        query = parse_qs(urlparse(authorization_url).query)
        check(query.get("resource", [""])[0] == url, "the authorization request must carry resource (RFC 8707)", query)
        print(f"ok: authorization request scope={query.get('scope', [''])[0]!r} resource={query['resource'][0]}")
        async with httpx2.AsyncClient() as browser:
            answer = await browser.get(authorization_url)
        check(answer.status_code in (302, 303), "the authorization endpoint must redirect", answer.status_code)
        back = parse_qs(urlparse(answer.headers["location"]).query)
        redirected["code"] = back["code"][0]
        redirected["state"] = back.get("state", [""])[0]

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirected["code"], state=redirected["state"])

    storage = Memory(client_id)
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(redirect_uris=[REDIRECT], client_name="omniroute-mcp oauth test"),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )

    async def log_request(request: httpx2.Request) -> None:
        seen.append(f"{request.method} {request.url}")

    async with create_mcp_http_client(auth=provider) as http:
        http.event_hooks["request"].append(log_request)
        async with streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "omniroute-mcp", "serverInfo.name", init.server_info.name)
            print(f"ok: initialized through OAuth, protocol {init.protocol_version}")
            listed = await session.list_tools()
            tools = sorted(tool.name for tool in listed.tools)
            for name in names("EXPECT_TOOLS"):
                check(name in tools, f"tools/list lacks {name}", tools)
            for name in names("HIDDEN_TOOLS"):
                check(name not in tools, f"tools/list must not show {name}", tools)
            print(f"ok: tools/list: {', '.join(tools)}")
            health = await session.call_tool(HEALTH, {})
            check(not health.is_error, f"{HEALTH} returned an error", [getattr(b, "text", "") for b in health.content])
            print(f"ok: {HEALTH} answered")
    check(storage.tokens is not None, "the flow must have stored an access token")
    for line in seen:
        print(f"request: {line}")
    check(any("/.well-known/oauth-protected-resource" in line for line in seen), "no protected-resource metadata request", seen)
    check(any("/token" in line for line in seen), "no token request", seen)


if __name__ == "__main__":
    sys.exit(run_checks(run, TIMEOUT_S))
