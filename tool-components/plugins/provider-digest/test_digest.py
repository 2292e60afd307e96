"""Unit tests of digest.py on the real gateway answers in tool-components/testing/fixtures/gateway.

Run with plain CPython, no packages needed: `python3 -m unittest` in this folder
(`cargo xtask test` does).
"""

import json
import os
import unittest

import digest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testing", "fixtures", "gateway")
NODE_9BF = "openai-compatible-chat-9bf192e7-8141-485a-88a1-3f5e6e4f84be"
NODE_1F2 = "openai-compatible-chat-1f2e00b9-0860-4f8f-93e7-2cf565feb2f4"


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        return f.read()


def ok(name):
    return json.loads(fixture(name)), None


class FakeGateway:
    """Answers `send_all(paths)` from a dict path -> (status, body) or error text."""

    def __init__(self, **overrides):
        self.answers = {
            digest.HEALTH: (200, fixture("health-open-breakers")),
            digest.PROVIDER_METRICS: (200, fixture("provider-metrics")),
            digest.PROVIDER_NODES: (200, fixture("provider-nodes")),
            digest.PRICING_MODELS: (200, fixture("pricing-models-excerpt")),
        }
        self.answers.update(overrides)
        self.batches = []

    def send_all(self, paths):
        self.batches.append(list(paths))
        out = []
        for p in paths:
            a = self.answers[p]
            out.append((None, a) if isinstance(a, str) else digest.json_answer(*a))
        return out


def call(gw, args=None):
    return json.loads(digest.run(json.dumps(args or {}), gw.send_all))


class DigestTest(unittest.TestCase):
    def test_open_breakers_rank_first_with_reasons(self):
        # health-open-breakers: OPEN for `mock` and for the node id of a
        # restarted gateway; provider-metrics: 4 of 15 failed on NODE_9BF.
        gw = FakeGateway()
        out = call(gw)
        self.assertEqual(gw.batches, [digest.SOURCES], "one concurrent batch")
        self.assertEqual(out["degraded"], [])
        first = out["providers"][0]
        self.assertEqual(first["provider"], "mock")
        self.assertEqual(first["gatewayId"], NODE_9BF)
        self.assertEqual(first["names"], sorted(["mock", NODE_9BF]))
        self.assertEqual(first["breaker"], "OPEN")
        self.assertEqual(first["retryAfterMs"], 56056)
        self.assertEqual(first["requests"], 15)
        self.assertEqual(first["errorRate"], 0.2667)
        self.assertEqual(first["avgLatencyMs"], 148)
        self.assertEqual(first["trouble"], 126.67)
        self.assertEqual(first["reasons"], [
            "circuit breaker OPEN after 2 failure(s), retry in 56 s",
            "26.7 % of 15 request(s) failed (all time)",
        ])
        # The other gateway's node (unknown here): OPEN, no requests.
        second = out["providers"][1]
        self.assertEqual((second["provider"], second["breaker"], second["requests"]), (NODE_1F2, "OPEN", 0))
        self.assertEqual(second["errorRate"], None)
        self.assertEqual(second["trouble"], 100)
        self.assertIn("no requests in the call logs, so no error rate", second["reasons"])
        self.assertEqual(out["summary"], {"providers": 2, "open": 2, "halfOpen": 0, "withErrors": 1})
        self.assertEqual([p["rank"] for p in out["providers"]], [1, 2])

    def test_closed_breakers_rank_by_error_rate(self):
        # health-populated: all CLOSED, `mock` counted 4 failures; leftovers
        # `openai` and `nope` without traffic.
        out = call(FakeGateway(**{digest.HEALTH: (200, fixture("health-populated"))}))
        names = [p["provider"] for p in out["providers"]]
        self.assertEqual(names[0], "mock")
        self.assertEqual(out["providers"][0]["reasons"], [
            "breaker CLOSED, 4 failure(s) counted",
            "26.7 % of 15 request(s) failed (all time)",
        ])
        self.assertEqual(sorted(names[1:]), ["nope", "openai"])
        for p in out["providers"][1:]:
            self.assertEqual(p["trouble"], 0)
            self.assertEqual(p["reasons"][-1], "no trouble seen")
        only = call(FakeGateway(**{digest.HEALTH: (200, fixture("health-populated"))}), {"onlyTroubled": True})
        self.assertEqual([p["provider"] for p in only["providers"]], ["mock"])
        self.assertEqual(only["summary"]["providers"], 3, "the summary counts every provider")

    def test_failed_sources_are_degraded_not_invented(self):
        out = call(FakeGateway(**{digest.PROVIDER_METRICS: (500, '{"error":"db"}')}))
        self.assertEqual(out["degraded"], [
            {"source": "GET /api/provider-metrics", "error": 'OmniRoute API error [500]: {"error":"db"}'}
        ])
        for p in out["providers"]:
            self.assertIsNone(p["requests"])
            self.assertIsNone(p["errorRate"])
            self.assertIn("error rate unknown: /api/provider-metrics failed (see degraded)", p["reasons"])
        # Without the alias maps, the prefix and the node id stay apart.
        out = call(FakeGateway(**{digest.PROVIDER_NODES: "OmniRoute API unreachable: GET /api/provider-nodes: refused"}))
        self.assertEqual(out["degraded"][0]["source"], "GET /api/provider-nodes")
        self.assertEqual(len(out["providers"]), 3)
        # Health down: breaker null, ranking by error rate only.
        out = call(FakeGateway(**{digest.HEALTH: (200, "<html>")}))
        self.assertEqual(out["degraded"][0]["error"], "OmniRoute API error [200]: <non-JSON body, 6 bytes>")
        self.assertEqual(out["providers"][0]["breaker"], None)
        self.assertEqual(out["providers"][0]["trouble"], 26.67)

    def test_both_main_sources_down_is_an_error_with_next_step(self):
        gw = FakeGateway(**{
            digest.HEALTH: "OmniRoute API timeout after 15 s: GET /api/monitoring/health",
            digest.PROVIDER_METRICS: (503, "down"),
        })
        with self.assertRaises(digest.ToolError) as e:
            call(gw)
        self.assertEqual(str(e.exception),
                         "Neither /api/monitoring/health nor /api/provider-metrics answered, so there is nothing to digest: "
                         "OmniRoute API timeout after 15 s: GET /api/monitoring/health; OmniRoute API error [503]: <non-JSON body, 4 bytes>. "
                         "Check that the gateway is running and reachable, then retry.")

    def test_half_open_and_top(self):
        health = {"providerBreakers": [
            {"provider": "cc", "state": "HALF_OPEN", "failureCount": 3},
            {"provider": "claude", "state": "CLOSED", "failureCount": 0},
            {"provider": "openai", "state": "CLOSED"},
        ]}
        metrics = {"metrics": {"claude": {"totalRequests": 10, "totalSuccesses": 10, "avgLatencyMs": 90}}}
        out = call(FakeGateway(**{
            digest.HEALTH: (200, json.dumps(health)),
            digest.PROVIDER_METRICS: (200, json.dumps(metrics)),
        }), {"top": 1})
        self.assertEqual(len(out["providers"]), 1)
        top = out["providers"][0]
        # `cc` and `claude` are one built-in provider (pricing models alias).
        self.assertEqual((top["provider"], top["gatewayId"], top["names"]), ("cc", "claude", ["cc", "claude"]))
        self.assertEqual((top["breaker"], top["trouble"], top["errorRate"]), ("HALF_OPEN", 50, 0))
        self.assertEqual(top["reasons"], ["circuit breaker HALF_OPEN: probing after 3 failure(s)"])
        self.assertEqual(out["summary"]["halfOpen"], 1)

    def test_input_errors_say_what_to_do(self):
        gw = FakeGateway()
        for args, text in [
            ({"top": 0}, "Invalid input: top must be an integer >= 1 (omit it to list every provider)"),
            ({"top": True}, "Invalid input: top must be an integer >= 1 (omit it to list every provider)"),
            ({"onlyTroubled": "yes"}, "Invalid input: onlyTroubled must be a boolean"),
        ]:
            with self.assertRaises(digest.ToolError) as e:
                call(gw, args)
            self.assertEqual(str(e.exception), text)
        with self.assertRaises(digest.ToolError):
            digest.run("{nope", gw.send_all)
        self.assertEqual(json.loads(digest.run("  ", gw.send_all))["summary"]["providers"], 2)

    def test_error_texts_match_the_rust_sdk(self):
        self.assertEqual(digest.transport_error_text("/api/x", "denied", "granted: read:combos"),
                         "Not permitted: GET /api/x is outside the scopes granted to this call (granted: read:combos)")
        self.assertEqual(digest.transport_error_text("/api/x", "timeout", 15), "OmniRoute API timeout after 15 s: GET /api/x")
        self.assertEqual(digest.transport_error_text("/api/x", "too-large", None), "OmniRoute API response too large: GET /api/x")
        self.assertEqual(digest.transport_error_text("/api/x", "auth", "Log in first"), "Log in first")
        long_body = json.dumps({"error": "\u00e9" * 3000})
        shown = digest.api_error_text(500, long_body)[len("OmniRoute API error [500]: "):]
        self.assertEqual(len(shown), digest.MAX_BODY_CHARS + 1)
        self.assertTrue(shown.endswith("\u2026"))

    def test_description_matches_the_manifest(self):
        desc = digest.describe()
        self.assertEqual(list(desc), ["name", "title", "description", "inputSchema", "outputSchema", "scopes", "annotations"])
        manifest = {}
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tool.toml"), encoding="utf-8") as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    manifest[k.strip()] = v.strip()
        self.assertEqual(json.loads(manifest["name"]), desc["name"])
        self.assertEqual(json.loads(manifest["scopes"]), desc["scopes"])
        self.assertFalse(desc["name"].startswith("omniroute_"), "reserved prefix")
        # Every output field the schema requires is present.
        out = call(FakeGateway())
        item = desc["outputSchema"]["properties"]["providers"]["items"]
        for p in out["providers"]:
            self.assertEqual(list(p), item["required"])


if __name__ == "__main__":
    unittest.main()
