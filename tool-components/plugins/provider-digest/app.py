"""`provider_digest`: the WIT glue for componentize-py.

componentize-py generates the `wit_world` package from tools-wit/wit (world
`tool`) at build time; this module implements its exports and hands the
`gateway` import to the pure logic in `digest.py`, which is unit-tested with
plain CPython (`python3 -m unittest` in this folder).
"""

import json

import wit_world
from wit_world.imports import gateway
from componentize_py_types import Err, Ok

import digest

# WIT `gateway.error` cases -> the names digest.transport_error_text takes.
_ERROR_KINDS = {
    gateway.Error_Denied: "denied",
    gateway.Error_Timeout: "timeout",
    gateway.Error_Unreachable: "unreachable",
    gateway.Error_TooLarge: "too-large",
    gateway.Error_Invalid: "invalid",
    gateway.Error_Auth: "auth",
    gateway.Error_Refused: "refused",
}


def _send_all(paths):
    """One `send-all` import call: the host runs the GETs concurrently."""
    requests = [gateway.Request(method=gateway.Method.GET, path=p, query=[], body=None) for p in paths]
    answers = []
    for path, result in zip(paths, gateway.send_all(requests)):
        if isinstance(result, Ok):
            answers.append(digest.json_answer(result.value.status, result.value.body))
        else:
            error = result.value
            kind = _ERROR_KINDS.get(type(error), "invalid")
            answers.append((None, digest.transport_error_text(path, kind, getattr(error, "value", None))))
    while len(answers) < len(paths):
        answers.append((None, "Invalid gateway request: the host answered %d of %d requests" % (len(answers), len(paths))))
    return answers


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return json.dumps(digest.describe(), separators=(",", ":"))

    def call(self, input: str) -> str:
        try:
            return digest.run(input, _send_all)
        except digest.ToolError as e:
            raise Err(str(e))
