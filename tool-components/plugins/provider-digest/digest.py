"""The logic of `provider_digest`, free of any WebAssembly binding.

Everything here is plain Python over parsed gateway JSON, so it runs and is
tested with a normal CPython (`python3 -m unittest` in this folder); `app.py`
is the thin glue that turns the WIT imports into these calls.

The digest ranks providers by trouble:

* the circuit breakers of `GET /api/monitoring/health` (`providerBreakers`):
  an OPEN breaker counts 100 points, HALF_OPEN 50;
* the all-time error rate of `GET /api/provider-metrics`: its percentage
  (0-100) is added (27 % failed requests: 27 points);

and says why in `reasons`. The gateway names one provider several ways (a
custom node by id and by prefix, a built-in provider by id and by alias;
docs/gateway.md#provider-identity), so entries are grouped with `GET /api/provider-nodes` and
`GET /api/pricing/models` when they answer. Nothing is estimated: a value the
gateway did not give is `None` (JSON `null`) and a reason says why.
"""

import json

NAME = "provider_digest"
SCOPES = ["read:health"]

HEALTH = "/api/monitoring/health"
PROVIDER_METRICS = "/api/provider-metrics"
PROVIDER_NODES = "/api/provider-nodes"
PRICING_MODELS = "/api/pricing/models"

# The reads of one call, in the order `digest_from_answers` takes them.
SOURCES = [HEALTH, PROVIDER_METRICS, PROVIDER_NODES, PRICING_MODELS]

BREAKER_POINTS = {"OPEN": 100, "HALF_OPEN": 50, "CLOSED": 0}
STATE_ORDER = ["CLOSED", "HALF_OPEN", "OPEN"]

# Cut for gateway error bodies in messages (docs/contract.md#error-texts).
MAX_BODY_CHARS = 1000


def describe():
    """What the WIT `describe` export returns (keys in the host's order)."""
    nullable = lambda ty, d: {"type": [ty, "null"], "description": d}
    provider = {
        "type": "object",
        "properties": {
            "rank": {"type": "integer", "description": "1 = most trouble"},
            "provider": {"type": "string", "description": "Short name (node prefix or built-in alias) when known, else the gateway's id"},
            "gatewayId": {"type": "string", "description": "The id the gateway's own endpoints use"},
            "names": {"type": "array", "items": {"type": "string"}, "description": "Every name the gateway reported this provider under"},
            "breaker": nullable("string", "Worst breaker state (OPEN, HALF_OPEN, CLOSED); null when health failed"),
            "failureCount": nullable("integer", "Failures counted by the breaker; null without a breaker entry"),
            "retryAfterMs": nullable("integer", "Time until an OPEN breaker lets a request through; null otherwise"),
            "requests": nullable("integer", "All-time requests in the call logs; null when provider metrics failed"),
            "errorRate": nullable("number", "Failed / all requests (0..1, 4 decimals); null without requests"),
            "avgLatencyMs": nullable("number", "Request-weighted mean latency; null without requests"),
            "trouble": {"type": "number", "description": "OPEN 100 / HALF_OPEN 50, plus the error rate in percent"},
            "reasons": {"type": "array", "items": {"type": "string"}, "description": "Why it ranks where it does"},
        },
        "required": ["rank", "provider", "gatewayId", "names", "breaker", "failureCount", "retryAfterMs",
                     "requests", "errorRate", "avgLatencyMs", "trouble", "reasons"],
    }
    return {
        "name": NAME,
        "title": "Provider trouble digest",
        "description": "Ranks providers by trouble (open circuit breakers from health, error rates from provider metrics) with the reasons, worst first",
        "inputSchema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "onlyTroubled": {"type": "boolean", "default": False, "description": "List only providers with trouble > 0"},
                "top": {"type": "integer", "minimum": 1, "description": "At most this many providers"},
            },
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "providers": {"type": "array", "items": provider, "description": "Worst first"},
                "summary": {
                    "type": "object",
                    "properties": {k: {"type": "integer"} for k in ["providers", "open", "halfOpen", "withErrors"]},
                    "required": ["providers", "open", "halfOpen", "withErrors"],
                },
                "degraded": {
                    "type": "array",
                    "description": "Gateway sources that failed during this call; empty when all succeeded",
                    "items": {
                        "type": "object",
                        "properties": {"source": {"type": "string"}, "error": {"type": "string"}},
                        "required": ["source", "error"],
                    },
                },
            },
            "required": ["providers", "summary", "degraded"],
        },
        "scopes": SCOPES,
        "annotations": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False},
    }


class ToolError(Exception):
    """A failed call; the message tells the agent what to do next."""


# ---- gateway answers -> JSON or the contract's error text (docs/contract.md#error-texts) ----

def _truncate(text, limit=MAX_BODY_CHARS):
    return text if len(text) <= limit else text[:limit] + "\u2026"


def api_error_text(status, body):
    """`OmniRoute API error [<status>]: <compact JSON body | <non-JSON body, n bytes>>`."""
    try:
        shown = _truncate(json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False))
    except ValueError:
        shown = "<non-JSON body, %d bytes>" % len(body.encode("utf-8"))
    return "OmniRoute API error [%d]: %s" % (status, shown)


def transport_error_text(path, kind, value):
    """The text of a host-reported error (`kind` is the WIT error case)."""
    source = "GET " + path
    if kind == "denied":
        return "Not permitted: %s is outside the scopes granted to this call (%s)" % (source, value)
    if kind == "timeout":
        return "OmniRoute API timeout after %s s: %s" % (value, source)
    if kind == "unreachable":
        return "OmniRoute API unreachable: %s: %s" % (source, value)
    if kind == "too-large":
        return "OmniRoute API response too large: " + source
    if kind == "invalid":
        return "Invalid gateway request: %s" % value
    return str(value)  # auth, refused: the host's complete message


def json_answer(status, body):
    """(json, None) for a 2xx JSON answer, else (None, error text)."""
    if not 200 <= status < 300:
        return None, api_error_text(status, body)
    try:
        return json.loads(body), None
    except ValueError:
        return None, "OmniRoute API error [%d]: <non-JSON body, %d bytes>" % (status, len(body.encode("utf-8")))


# ---- provider identity (docs/gateway.md#provider-identity) ----

def _text(v):
    return v.strip() if isinstance(v, str) and v.strip() else None


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class Providers:
    """Groups the names of one provider: a custom node's id and prefix, a
    built-in provider's id and alias. Missing sources just map less."""

    def __init__(self, nodes=None, models=None):
        self.identities = []  # (gateway id, short name or None)
        node_list = nodes if isinstance(nodes, list) else (nodes or {}).get("nodes") if isinstance(nodes, dict) else None
        for n in node_list if isinstance(node_list, list) else []:
            if isinstance(n, dict) and _text(n.get("id")):
                self.identities.append((_text(n["id"]), _text(n.get("prefix"))))
        if isinstance(models, dict):
            for key, e in models.items():
                if isinstance(e, dict) and _text(e.get("id")):
                    self.identities.append((_text(e["id"]), _text(e.get("alias")) or key))

    def gateway_id(self, name):
        for ident, short in self.identities:
            if name in (ident, short):
                return ident
        return name

    def short_name(self, gateway_id):
        for ident, short in self.identities:
            if ident == gateway_id and short:
                return short
        return gateway_id


# ---- the digest ----

class _Entry:
    def __init__(self, gateway_id):
        self.gateway_id = gateway_id
        self.names = set()
        self.states = []
        self.failures = None
        self.retry_after = None
        self.requests = 0
        self.successes = 0
        self.latency_weighted = 0.0
        self.latency_requests = 0


def _pct(fraction):
    text = ("%.1f" % (fraction * 100)).rstrip("0").rstrip(".")
    return text + " %"


def digest(health, metrics, providers, only_troubled=False, top=None, degraded=None):
    """The output for parsed answers; `health` or `metrics` is None when that
    source failed (it is then in `degraded`)."""
    if health is None and metrics is None:
        raise ToolError(
            "Neither %s nor %s answered, so there is nothing to digest: %s. "
            "Check that the gateway is running and reachable, then retry."
            % (HEALTH, PROVIDER_METRICS, "; ".join(d["error"] for d in degraded or []))
        )
    entries = {}

    def entry(name):
        gid = providers.gateway_id(name)
        e = entries.setdefault(gid, _Entry(gid))
        e.names.add(name)
        return e

    if health is not None:
        for b in health.get("providerBreakers") or []:
            name = _text(b.get("provider")) if isinstance(b, dict) else None
            if not name:
                continue
            e = entry(name)
            if b.get("state") in BREAKER_POINTS:
                e.states.append(b["state"])
            count = _num(b.get("failureCount"))
            if count is not None:
                e.failures = max(e.failures or 0, int(count))
            retry = _num(b.get("retryAfterMs"))
            if b.get("state") == "OPEN" and retry is not None:
                e.retry_after = max(e.retry_after or 0, int(retry))
    if metrics is not None:
        by_provider = metrics.get("metrics") if isinstance(metrics.get("metrics"), dict) else {}
        for name, m in by_provider.items():
            if not isinstance(m, dict) or not _text(name):
                continue
            e = entry(name)
            total = _num(m.get("totalRequests")) or 0
            e.requests += int(total)
            e.successes += int(_num(m.get("totalSuccesses")) or 0)
            latency = _num(m.get("avgLatencyMs"))
            if total > 0 and latency is not None:
                e.latency_weighted += latency * total
                e.latency_requests += total

    rows = []
    for e in entries.values():
        reasons = []
        trouble = 0.0
        if health is None:
            breaker = None
            reasons.append("breaker state unknown: %s failed (see degraded)" % HEALTH)
        else:
            breaker = max(e.states, key=STATE_ORDER.index) if e.states else "CLOSED"
            trouble += BREAKER_POINTS[breaker]
            if breaker == "OPEN":
                wait = "" if e.retry_after is None else ", retry in %d s" % round(e.retry_after / 1000)
                reasons.append("circuit breaker OPEN after %s failure(s)%s" % (e.failures or 0, wait))
            elif breaker == "HALF_OPEN":
                reasons.append("circuit breaker HALF_OPEN: probing after %s failure(s)" % (e.failures or 0))
            elif e.failures:
                reasons.append("breaker CLOSED, %d failure(s) counted" % e.failures)
        if metrics is None:
            requests, error_rate = None, None
            reasons.append("error rate unknown: %s failed (see degraded)" % PROVIDER_METRICS)
        else:
            requests = e.requests
            if requests > 0:
                failed = max(requests - e.successes, 0)
                error_rate = round(failed / requests, 4)
                trouble += round(failed / requests * 100, 2)
                if failed:
                    reasons.append("%s of %d request(s) failed (all time)" % (_pct(failed / requests), requests))
            else:
                error_rate = None
                reasons.append("no requests in the call logs, so no error rate")
        if trouble == 0 and not any(r.startswith(("breaker state unknown", "error rate unknown")) for r in reasons):
            reasons.append("no trouble seen")
        rows.append({
            "provider": providers.short_name(e.gateway_id),
            "gatewayId": e.gateway_id,
            "names": sorted(e.names),
            "breaker": breaker,
            "failureCount": e.failures,
            "retryAfterMs": e.retry_after,
            "requests": requests,
            "errorRate": error_rate,
            "avgLatencyMs": round(e.latency_weighted / e.latency_requests) if e.latency_requests else None,
            "trouble": int(trouble) if trouble == int(trouble) else trouble,
            "reasons": reasons,
        })
    rows.sort(key=lambda r: (-r["trouble"], -(r["requests"] or 0), r["provider"]))
    summary = {
        "providers": len(rows),
        "open": sum(1 for r in rows if r["breaker"] == "OPEN"),
        "halfOpen": sum(1 for r in rows if r["breaker"] == "HALF_OPEN"),
        "withErrors": sum(1 for r in rows if r["errorRate"]),
    }
    if only_troubled:
        rows = [r for r in rows if r["trouble"] > 0]
    if top is not None:
        rows = rows[:top]
    out = []
    for i, r in enumerate(rows):
        out.append(dict({"rank": i + 1}, **r))
    return {"providers": out, "summary": summary, "degraded": list(degraded or [])}


def parse_input(text):
    """The call input (`""` counts as `{}`), checked."""
    try:
        args = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise ToolError("Invalid input: not JSON (%s)" % e)
    if not isinstance(args, dict):
        raise ToolError("Invalid input: expected a JSON object")
    only = args.get("onlyTroubled", False)
    if not isinstance(only, bool):
        raise ToolError("Invalid input: onlyTroubled must be a boolean")
    top = args.get("top")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ToolError("Invalid input: top must be an integer >= 1 (omit it to list every provider)")
    return only, top


def digest_from_answers(answers, only_troubled=False, top=None):
    """`answers`: one (json or None, error text or None) per path of
    SOURCES, in order. Failed sources go to `degraded`."""
    degraded = []
    parsed = []
    for path, (value, error) in zip(SOURCES, answers):
        if error is not None:
            degraded.append({"source": "GET " + path, "error": error})
            value = None
        elif path in (HEALTH, PROVIDER_METRICS) and not isinstance(value, dict):
            degraded.append({"source": "GET " + path, "error": "unexpected answer: not a JSON object"})
            value = None
        parsed.append(value)
    health, metrics, nodes, models = parsed
    return digest(health, metrics, Providers(nodes, models), only_troubled, top, degraded)


def run(input_text, send_all):
    """The whole call. `send_all(paths)` returns one (json, error) per path."""
    only, top = parse_input(input_text)
    result = digest_from_answers(send_all(SOURCES), only, top)
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)
