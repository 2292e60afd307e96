//! OAuth 2.1 on the Streamable HTTP transport, against a real authorization server: npm
//! `oauth2-mock-server` (installed by `cargo xtask test`) started per test by
//! `tests/oauth/authorization-server.mjs`, whose hooks give each case the audience, subject,
//! expiry or `kid` it needs. Tokens come from its real token endpoint and are signed with the
//! keys its real JWKS publishes; the server under test talks to the real gateway.
//!
//! Covered: the protected-resource metadata (RFC 9728) and the `WWW-Authenticate` challenges;
//! accepted tokens; wrong audience, expired, unknown `kid`, bad signature, `alg: none`, unknown
//! issuer, unmapped subject and missing scope refused with the right status and header; token
//! scopes only narrow the operator's; per-subject principals; key rotation picked up with a
//! bound on JWKS refreshes; static tenant tokens beside OAuth; opaque tokens through RFC 7662
//! introspection (accepted and narrowed, inactive and revoked ones refused); and the Python SDK's
//! OAuth client walking the discovery to `tools/list`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use omniroute_mcp_tests::{RealGateway, TempDir, paths, python};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

const TIMEOUT: Duration = Duration::from_secs(60);
const HEALTH: &str = "omniroute_get_health";
const COMBOS: &str = "omniroute_list_combos";
const SWITCH: &str = "omniroute_switch_combo";
const NODE_VAR: &str = "OMNIROUTE_MCP_NODE";
const PACKAGE_VAR: &str = "OAUTH2_MOCK_SERVER_DIR";
const STATIC_TOKEN: &str = "static-token-of-ops";

fn required_env(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run these tests with `cargo xtask test -- -p omniroute-mcp-tests --test oauth`, which installs oauth2-mock-server")
    })
}

/// One authorization server process (ends with the test: its stdin closes and it is killed on drop).
struct AuthServer {
    _child: tokio::process::Child,
    issuer: String,
    http: reqwest::Client,
}

impl AuthServer {
    async fn start() -> AuthServer {
        let script = paths::tests_crate_dir().join("oauth").join("authorization-server.mjs");
        let mut child = tokio::process::Command::new(required_env(NODE_VAR))
            .arg(&script)
            .env(PACKAGE_VAR, required_env(PACKAGE_VAR))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the authorization server (Node 22)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(TIMEOUT, lines.next_line())
            .await
            .expect("the authorization server printed its issuer in time")
            .expect("read its stdout")
            .expect("it printed a line before exiting");
        let issuer = line.strip_prefix("issuer ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_owned();
        AuthServer { _child: child, issuer, http: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap() }
    }

    /// An access token from the token endpoint (client credentials) with these form fields.
    async fn token(&self, form: &[(&str, &str)]) -> String {
        let mut fields = vec![("grant_type", "client_credentials")];
        fields.extend_from_slice(form);
        let answer: Value = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&fields)
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token answer is JSON");
        answer["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {answer}")).to_owned()
    }

    /// A token for `resource` with `subject` and `scope`.
    async fn token_for(&self, resource: &str, subject: &str, scope: &str) -> String {
        self.token(&[("resource", resource), ("test_sub", subject), ("scope", scope), ("client_id", "test-client")]).await
    }

    async fn rotate(&self) -> String {
        let answer: Value =
            self.http.post(format!("{}/test/rotate", self.issuer)).send().await.unwrap().json().await.unwrap();
        answer["kid"].as_str().expect("kid").to_owned()
    }

    async fn jwks_fetches(&self) -> u64 {
        self.stat("jwks_fetches").await
    }

    /// RFC 7662 requests the authorization server answered.
    async fn introspections(&self) -> u64 {
        self.stat("introspections").await
    }

    async fn stat(&self, name: &str) -> u64 {
        let answer: Value = self.http.get(format!("{}/test/stats", self.issuer)).send().await.unwrap().json().await.unwrap();
        answer[name].as_u64().unwrap_or_else(|| panic!("no {name} in {answer}"))
    }

    /// An opaque (non-JWT) access token for `resource` with `subject` and `scope`, from the real
    /// token endpoint (the launcher swaps the JWT for a random string it can introspect).
    async fn opaque_token_for(&self, resource: &str, subject: &str, scope: &str) -> String {
        self.token(&[("resource", resource), ("test_sub", subject), ("scope", scope), ("client_id", "test-client"), ("test_opaque", "1")])
            .await
    }

    /// Revokes `token` at the revocation endpoint (RFC 7009).
    async fn revoke(&self, token: &str) {
        let answer = self.http.post(format!("{}/revoke", self.issuer)).form(&[("token", token)]).send().await.unwrap();
        assert!(answer.status().is_success(), "revoke: {}", answer.status());
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn part(token: &str, index: usize) -> Value {
    let text = token.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
}

/// The server under test: `serve --http` with a tenants file, against the real gateway.
struct Server {
    _child: tokio::process::Child,
    base: String,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
    http: reqwest::Client,
}

struct Reply {
    status: u16,
    challenge: Option<String>,
    session: Option<String>,
    message: Option<Value>,
    text: String,
}

impl Server {
    async fn start(tenants: &str) -> Server {
        Server::start_with_env(tenants, &[]).await
    }

    /// [`Server::start`] with these extra environment variables.
    async fn start_with_env(tenants: &str, env: &[(&str, &str)]) -> Server {
        let gateway = RealGateway::plain();
        let dir = TempDir::new("oauth");
        let file = dir.path().join("tenants.toml");
        std::fs::write(&file, tenants).unwrap();
        let mut command =
            gateway.server().arg("serve").arg("--http").arg("127.0.0.1:0").arg("--tenants").arg(file.as_os_str());
        for (name, value) in env {
            command = command.env(name, value);
        }
        let mut child = command.to_command().spawn().expect("spawn the server");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        {
            let log = log.clone();
            tokio::spawn(async move {
                let mut tx = Some(tx);
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on http://").nth(1)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(rest.trim_end_matches("/mcp").trim().to_owned());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let addr = tokio::time::timeout(TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("no listening line: {}", log.lock().unwrap()))
            .unwrap_or_else(|_| panic!("the server exited: {}", log.lock().unwrap()));
        let server = Server {
            _child: child,
            base: format!("http://{addr}"),
            log,
            _dir: dir,
            http: reqwest::Client::builder().timeout(TIMEOUT).build().unwrap(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self.http.get(format!("{}/readyz", self.base)).send().await.unwrap().status() != 200 {
            assert!(std::time::Instant::now() < deadline, "not ready: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn post(&self, token: Option<&str>, session: Option<&str>, body: Value) -> Reply {
        let mut request = self
            .http
            .post(self.resource())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if let Some(s) = session {
            request = request.header("mcp-session-id", s).header("mcp-protocol-version", "2025-06-18");
        }
        let response = request.send().await.expect("POST /mcp");
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let challenge = header("www-authenticate");
        let session = header("mcp-session-id");
        let text = response.text().await.unwrap_or_default();
        let message = omniroute_mcp_tests::mcp::http_answer(&text);
        Reply { status, challenge, session, message, text }
    }

    async fn initialize(&self, token: &str) -> Reply {
        self.post(
            Some(token),
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "oauth-test", "version": "0"}}}),
        )
        .await
    }

    /// initialize + initialized; the session id.
    async fn open(&self, token: &str) -> String {
        let init = self.initialize(token).await;
        assert_eq!(init.status, 200, "initialize: {} {:?}\n{}", init.text, init.challenge, self.log());
        let session = init.session.expect("mcp-session-id");
        let note = self.post(Some(token), Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        assert!(note.status == 202 || note.status == 200, "initialized: {}", note.text);
        session
    }

    async fn tools(&self, token: &str, session: &str) -> Vec<String> {
        let r = self.post(Some(token), Some(session), json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let message = r.message.unwrap_or_else(|| panic!("no answer: {}", r.text));
        message["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
    }

    async fn call(&self, token: &str, session: &str, tool: &str) -> Reply {
        self.post(
            Some(token),
            Some(session),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": tool, "arguments": {}}}),
        )
        .await
    }
}

/// A tenants file: the static tenant `ops`, the OAuth-only tenant `acme` (scopes `acme_scopes`)
/// for subject `alice` of `as`, and `extra` appended to the `[[oauth.issuer]]`.
fn tenants(auth: &AuthServer, acme_scopes: &str, extra: &str) -> String {
    format!(
        r#"[[tenant]]
id = "ops"
token_sha256 = "{}"
scopes = ["read:health"]

[[tenant]]
id = "acme"
scopes = [{acme_scopes}]

[oauth]

[[oauth.issuer]]
name = "as"
issuer = "{}"
{extra}

[[oauth.map]]
issuer = "as"
subject = "alice"
tenant = "acme"
"#,
        hex::encode(Sha256::digest(STATIC_TOKEN.as_bytes())),
        auth.issuer
    )
}

/// `tools/list` shows exactly the tools that need only `read:health` (the health and
/// provider-metrics tools), none needing another scope.
fn assert_read_health_only(tools: &[String], context: &str) {
    let mut sorted = tools.to_vec();
    sorted.sort();
    assert_eq!(sorted, vec![HEALTH.to_owned(), "omniroute_get_provider_metrics".to_owned()], "{context}");
}

fn challenge_of(reply: &Reply) -> String {
    reply.challenge.clone().unwrap_or_else(|| panic!("no WWW-Authenticate on {}: {}", reply.status, reply.text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_names_the_authorization_server_and_401s_point_to_it() {
    let auth = AuthServer::start().await;
    let server = Server::start(&tenants(&auth, r#""read:*""#, "")).await;
    let resource = server.resource();
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let answer = server.http.get(format!("{}{path}", server.base)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let doc: Value = answer.json().await.unwrap();
        assert_eq!(doc["resource"], resource.as_str(), "{doc}");
        assert_eq!(doc["authorization_servers"], json!([auth.issuer]), "{doc}");
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(
            doc["scopes_supported"],
            json!([
                "read:health", "read:combos", "write:combos", "read:quota", "execute:completions",
                "read:usage", "read:models", "write:budget", "write:resilience"
            ])
        );
    }
    let anonymous = server.initialize_without_token().await;
    assert_eq!(anonymous.status, 401);
    let challenge = challenge_of(&anonymous);
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", server.base);
    assert!(challenge.starts_with(&format!("Bearer resource_metadata=\"{metadata}\"")), "{challenge}");
    // What the operator allows anyone through OAuth (acme's read:*), for the client to request.
    assert!(challenge.contains("scope=\"read:health read:combos read:quota read:usage read:models\""), "{challenge}");
    assert!(!challenge.contains("error="), "no token, no error code (RFC 6750 §3.1): {challenge}");

    // Without [oauth] the discovery URL answers a JSON 404 that says why, not an HTML page.
    let plain = Server::start(&format!(
        "[[tenant]]\nid = \"ops\"\ntoken_sha256 = \"{}\"\nscopes = [\"read:health\"]\n",
        hex::encode(Sha256::digest(STATIC_TOKEN.as_bytes()))
    ))
    .await;
    let answer = plain.http.get(format!("{}/.well-known/oauth-protected-resource/mcp", plain.base)).send().await.unwrap();
    assert_eq!(answer.status(), 404);
    let body: Value = answer.json().await.expect("a JSON body");
    assert!(body["message"].as_str().unwrap().contains("no [oauth] table"), "{body}");
}

impl Server {
    async fn initialize_without_token(&self) -> Reply {
        self.post(None, None, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}))
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_are_accepted_and_bad_ones_refused_with_the_right_challenge() {
    let auth = AuthServer::start().await;
    let other = AuthServer::start().await;
    let server = Server::start(&tenants(&auth, r#""read:*""#, "")).await;
    let resource = server.resource();

    // Accepted: the tenant's tools, a real call through the real gateway.
    let good = auth.token_for(&resource, "alice", "read:health").await;
    assert_eq!(part(&good, 1)["aud"], resource.as_str(), "the launcher's hook sets aud from resource");
    let session = server.open(&good).await;
    assert_read_health_only(&server.tools(&good, &session).await, "read:health token");
    let call = server.call(&good, &session, HEALTH).await;
    assert_eq!(call.status, 200, "{}", call.text);
    let result = &call.message.as_ref().unwrap()["result"];
    assert_eq!(result["isError"], json!(false), "{result}");
    assert_eq!(result["structuredContent"]["status"], "healthy", "{result}");

    // A static tenant token works beside OAuth.
    let ops = server.open(STATIC_TOKEN).await;
    assert_read_health_only(&server.tools(STATIC_TOKEN, &ops).await, "");

    let invalid = |reply: &Reply, needle: &str| {
        assert_eq!(reply.status, 401, "{needle}: {}", reply.text);
        let challenge = challenge_of(reply);
        assert!(challenge.contains("error=\"invalid_token\""), "{needle}: {challenge}");
        assert!(challenge.contains("resource_metadata=\""), "{needle}: {challenge}");
        assert!(challenge.contains(needle) && reply.text.contains(needle), "{needle}: {challenge} / {}", reply.text);
    };
    let wrong_audience = auth.token_for("http://127.0.0.1:1/mcp", "alice", "read:health").await;
    invalid(&server.initialize(&wrong_audience).await, "audience");
    let expired = auth
        .token(&[("resource", &resource), ("test_sub", "alice"), ("scope", "read:health"), ("test_exp", "-120")])
        .await;
    invalid(&server.initialize(&expired).await, "expired");
    let not_yet = auth
        .token(&[("resource", &resource), ("test_sub", "alice"), ("scope", "read:health"), ("test_nbf", "600")])
        .await;
    invalid(&server.initialize(&not_yet).await, "not valid yet");
    let unknown_kid = auth
        .token(&[("resource", &resource), ("test_sub", "alice"), ("scope", "read:health"), ("test_kid", "no-such-key")])
        .await;
    invalid(&server.initialize(&unknown_kid).await, "no-such-key");
    // Signed by a key this issuer never published (another server's), under this issuer's kid.
    let foreign = other.token(&[("resource", &resource), ("test_sub", "alice"), ("scope", "read:health")]).await;
    let mut pieces: Vec<&str> = good.split('.').collect();
    pieces[2] = foreign.split('.').nth(2).unwrap();
    invalid(&server.initialize(&pieces.join(".")).await, "signature");
    // The payload changed after signing (scope widened).
    let mut claims = part(&good, 1);
    claims["scope"] = json!("read:health read:combos");
    let tampered = format!("{}.{}.{}", good.split('.').next().unwrap(), b64(claims.to_string().as_bytes()), good.split('.').nth(2).unwrap());
    invalid(&server.initialize(&tampered).await, "signature");
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": part(&good, 0)["kid"]}).to_string().as_bytes()),
        good.split('.').nth(1).unwrap()
    );
    invalid(&server.initialize(&none).await, "none");
    let unknown_issuer = other.token_for(&resource, "alice", "read:health").await;
    invalid(&server.initialize(&unknown_issuer).await, "not a configured authorization server");
    invalid(&server.initialize("not-a-jwt-nor-a-tenant-token").await, "not a JWT");

    // Valid, but nothing the operator allows: 403 insufficient_scope naming what to ask for.
    let no_scope = auth.token_for(&resource, "alice", "write:combos").await;
    let reply = server.initialize(&no_scope).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let challenge = challenge_of(&reply);
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"read:health read:combos read:quota read:usage read:models\""), "{challenge}");

    // Valid, for a subject the operator maps to nothing (and no default policy): 403.
    let stranger = auth.token_for(&resource, "mallory", "read:health").await;
    let reply = server.initialize(&stranger).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(reply.text.contains("mallory") && reply.text.contains("[[oauth.map]]"), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scopes_only_narrow_what_the_operator_allows() {
    let auth = AuthServer::start().await;
    let server = Server::start(&tenants(&auth, r#""read:health", "read:combos""#, "")).await;
    let resource = server.resource();
    // write:combos is in the token but not the tenant's: it grants nothing.
    let narrow = auth.token_for(&resource, "alice", "read:health write:combos").await;
    let session = server.open(&narrow).await;
    assert_read_health_only(&server.tools(&narrow, &session).await, "");
    // The operator allows read:combos, the token lacks it: 403 naming it (step-up).
    let reply = server.call(&narrow, &session, COMBOS).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let challenge = challenge_of(&reply);
    assert!(challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"read:combos\""), "{challenge}");
    // write:combos: not the operator's to give; refused in band like any tenant's missing scope.
    let reply = server.call(&narrow, &session, SWITCH).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let result = &reply.message.as_ref().unwrap()["result"];
    assert_eq!(result["isError"], json!(true), "{result}");
    assert!(result.to_string().contains("write:combos"), "{result}");
    // The same subject with read:combos in its token: listed and callable.
    let wider = auth.token_for(&resource, "alice", "read:health read:combos write:combos").await;
    let session = server.open(&wider).await;
    let tools = server.tools(&wider, &session).await;
    assert!(tools.iter().any(|t| t == HEALTH) && tools.iter().any(|t| t == COMBOS), "{tools:?}");
    assert!(!tools.iter().any(|t| t == SWITCH), "{tools:?}");
    let reply = server.call(&wider, &session, COMBOS).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.message.as_ref().unwrap()["result"]["isError"], json!(false), "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_subjects_get_their_own_principal_under_the_default_policy() {
    let auth = AuthServer::start().await;
    let server = Server::start(&tenants(&auth, r#""read:*""#, "default_scopes = [\"read:health\"]\nmax_sessions = 1")).await;
    let resource = server.resource();
    let bob = auth.token_for(&resource, "bob", "read:health read:combos").await;
    let carol = auth.token_for(&resource, "carol@example.com", "read:health").await;
    let bob_session = server.open(&bob).await;
    assert_read_health_only(&server.tools(&bob, &bob_session).await, "the policy's scopes bound the token's");
    let carol_session = server.open(&carol).await;
    // Separate principals: carol cannot use bob's session, and each has its own session cap.
    let reply = server.post(Some(&carol), Some(&bob_session), json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(reply.text.contains("another tenant"), "{}", reply.text);
    let second = server.initialize(&bob).await;
    assert_eq!(second.status, 429, "max_sessions = 1 per subject: {}", second.text);
    // Another token of the same subject is the same principal (same session, same cap).
    let bob_again = auth.token_for(&resource, "bob", "read:health").await;
    assert_read_health_only(&server.tools(&bob_again, &bob_session).await, "");
    assert_read_health_only(&server.tools(&carol, &carol_session).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_picked_up_and_unknown_kids_refresh_the_jwks_at_most_once_per_interval() {
    let auth = AuthServer::start().await;
    let server = Server::start(&tenants(&auth, r#""read:*""#, "jwks_min_refresh_s = 300")).await;
    let resource = server.resource();
    let before = auth.token_for(&resource, "alice", "read:health").await;
    server.open(&before).await;
    let fetched = auth.jwks_fetches().await;
    assert!(fetched >= 1, "the server fetched the JWKS");

    let new_kid = auth.rotate().await;
    // The mock signs with its keys in turn; take the first token signed with the new one.
    let mut rotated = None;
    for _ in 0..4 {
        let token = auth.token_for(&resource, "alice", "read:health").await;
        if part(&token, 0)["kid"] == new_kid.as_str() {
            rotated = Some(token);
            break;
        }
    }
    let rotated = rotated.expect("a token signed with the rotated key");
    server.open(&rotated).await;
    assert_eq!(auth.jwks_fetches().await, fetched + 1, "the unknown kid refetched the JWKS once");

    // Made-up kids cannot make the server refetch again within jwks_min_refresh_s.
    for i in 0..5 {
        let kid = format!("forged-{i}");
        let forged =
            auth.token(&[("resource", &resource), ("test_sub", "alice"), ("scope", "read:health"), ("test_kid", &kid)]).await;
        let reply = server.initialize(&forged).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    assert_eq!(auth.jwks_fetches().await, fetched + 1, "refreshes are bounded");
    // Both keys still verify.
    server.open(&before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_oauth_client_discovers_the_authorization_server_and_lists_tools() {
    let auth = AuthServer::start().await;
    // The authorization-code flow's subject is the mock's fixed `johndoe`; map it.
    let file = tenants(&auth, r#""read:health", "read:combos""#, "")
        + "\n[[oauth.map]]\nissuer = \"as\"\nsubject = \"johndoe\"\ntenant = \"acme\"\n";
    let server = Server::start(&file).await;
    let env = vec![
        ("OMNIROUTE_MCP_URL".to_owned(), server.resource()),
        ("OAUTH_CLIENT_ID".to_owned(), "omniroute-mcp-python-test".to_owned()),
        ("EXPECT_TOOLS".to_owned(), format!("{HEALTH},{COMBOS}")),
        ("HIDDEN_TOOLS".to_owned(), SWITCH.to_owned()),
    ];
    let run = python::run_script("oauth_client.py", &env, Duration::from_secs(120), || server.log()).await;
    assert!(run.stdout.contains("all checks passed"), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("/.well-known/oauth-protected-resource"), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("{}/token", auth.issuer)), "{}", run.stdout);
}

/// Rewrites `path` with `text` (same inode), keeping its modification time when `keep_mtime`:
/// then only SIGHUP can make the server notice.
fn rewrite(path: &std::path::Path, text: &str, keep_mtime: bool) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text).unwrap();
    if keep_mtime {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(before).unwrap();
    }
}

impl Server {
    fn tenants_file(&self) -> std::path::PathBuf {
        self._dir.path().join("tenants.toml")
    }

    fn pid(&self) -> u32 {
        self._child.id().expect("the server is running")
    }

    /// Polls (bounded) until `initialize` with `token` answers `status`.
    async fn until_initialize_is(&self, token: &str, status: u16, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let reply = self.initialize(token).await;
            if reply.status == status {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: still {} ({})\n{}", reply.status, reply.text, self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_mappings_reload_on_file_change_and_on_sighup() {
    let auth = AuthServer::start().await;
    let original = tenants(&auth, r#""read:*""#, "");
    let server = Server::start(&original).await;
    let resource = server.resource();
    let alice = auth.token_for(&resource, "alice", "read:health").await;
    server.open(&alice).await;
    server.open(STATIC_TOKEN).await;

    // The mapping removed: alice's valid token no longer acts as acme.
    let unmapped = original.replace("subject = \"alice\"", "subject = \"zelda\"");
    assert_eq!(unmapped.len(), original.len());
    rewrite(&server.tenants_file(), &unmapped, false);
    server.until_initialize_is(&alice, 403, "the removed mapping").await;
    // The static tenant renamed and its token changed (same length): the old token is refused.
    let other_hash = hex::encode(Sha256::digest(b"static-token-of-XXX"));
    let removed = unmapped
        .replace(&hex::encode(Sha256::digest(STATIC_TOKEN.as_bytes())), &other_hash)
        .replace("id = \"ops\"", "id = \"old\"");
    assert_eq!(removed.len(), original.len());
    rewrite(&server.tenants_file(), &removed, false);
    server.until_initialize_is(STATIC_TOKEN, 401, "the removed tenant").await;

    // Back to the original text, same length and modification time: only SIGHUP reloads it.
    rewrite(&server.tenants_file(), &original, true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.initialize(STATIC_TOKEN).await.status, 401, "no change seen without SIGHUP");
    let status = std::process::Command::new("kill").arg("-HUP").arg(server.pid().to_string()).status().unwrap();
    assert!(status.success());
    server.until_initialize_is(STATIC_TOKEN, 200, "the tenant restored by SIGHUP").await;
    server.until_initialize_is(&alice, 200, "the mapping restored by SIGHUP").await;

    // A file that no longer parses keeps the previous tenants.
    rewrite(&server.tenants_file(), "[[tenant]]\nid = \"broken\"\n", false);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.initialize(STATIC_TOKEN).await.status, 200, "{}", server.log());
    assert!(server.log().contains("still serving the previous tenants"), "{}", server.log());
}

/// A 401 `invalid_token` whose challenge and body say `needle`.
fn assert_invalid_token(reply: &Reply, needle: &str) {
    assert_eq!(reply.status, 401, "{needle}: {}", reply.text);
    let challenge = challenge_of(reply);
    assert!(challenge.contains("error=\"invalid_token\""), "{needle}: {challenge}");
    assert!(challenge.contains("resource_metadata=\""), "{needle}: {challenge}");
    assert!(challenge.contains(needle) && reply.text.contains(needle), "{needle}: {challenge} / {}", reply.text);
}

/// Opaque tokens through RFC 7662 introspection: the issuer's introspection endpoint, this
/// server's client credentials (the secret from the environment; the launcher answers 401 to
/// any other client) and a 1 s answer cache. An active token acts as its mapped tenant with its
/// scopes narrowed by the tenant's; unknown, foreign-audience and revoked tokens get 401
/// `invalid_token`, the revoked one as soon as the cached answer runs out; JWTs still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_narrowed_and_refused_once_revoked() {
    let auth = AuthServer::start().await;
    let extra = format!(
        "introspection_endpoint = \"{}/introspect\"\nintrospection_client_id = \"mcp-server\"\n\
         introspection_client_secret_env = \"TEST_INTROSPECTION_SECRET\"\nintrospection_cache_s = 1",
        auth.issuer
    );
    let file = tenants(&auth, r#""read:health""#, &extra);
    let server = Server::start_with_env(&file, &[("TEST_INTROSPECTION_SECRET", "introspection-secret")]).await;
    let resource = server.resource();

    let opaque = auth.opaque_token_for(&resource, "alice", "read:health read:combos").await;
    assert!(opaque.starts_with("opaque_") && !opaque.contains('.'), "not a JWT: {opaque}");
    let asked = auth.introspections().await;
    let session = server.open(&opaque).await;
    assert!(auth.introspections().await > asked, "the server introspected the token");
    assert_read_health_only(&server.tools(&opaque, &session).await, "the token's read:combos narrowed away by acme's scopes");
    let call = server.call(&opaque, &session, HEALTH).await;
    assert_eq!(call.status, 200, "{}", call.text);
    assert_eq!(call.message.as_ref().unwrap()["result"]["isError"], json!(false), "{}", call.text);

    assert_invalid_token(&server.initialize("opaque_never_issued_by_the_server").await, "not active");
    let foreign = auth.opaque_token_for("http://127.0.0.1:1/mcp", "alice", "read:health").await;
    assert_invalid_token(&server.initialize(&foreign).await, "audience");
    // JWTs are still verified against the JWKS beside introspection.
    let jwt = auth.token_for(&resource, "alice", "read:health").await;
    server.open(&jwt).await;

    // Revoked while its session is open: refused once the cached answer (1 s) runs out.
    auth.revoke(&opaque).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let reply = server.post(Some(&opaque), Some(&session), json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"})).await;
        if reply.status != 200 {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "the revoked token is still accepted\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_invalid_token(&refused, "not active");

    // This server's own client refused by the introspection endpoint: 503 saying what to fix,
    // not a 401 that would make the client drop a good token.
    let wrong = Server::start_with_env(&file, &[("TEST_INTROSPECTION_SECRET", "not-the-secret")]).await;
    let good = auth.opaque_token_for(&wrong.resource(), "alice", "read:health").await;
    let reply = wrong.initialize(&good).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    // The server logs the reason as it answers; its stderr reaches the test a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !wrong.log().contains("introspection_client_id") {
        assert!(std::time::Instant::now() < deadline, "the log does not name what to fix: {}", wrong.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
