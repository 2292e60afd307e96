"""Parses a Prometheus/OpenMetrics exposition with the reference parser of the Prometheus
Python client (strict: a malformed exposition fails here) and prints every sample as JSON.

Input: the file named by METRICS_FILE. Output on stdout: a JSON list of
{"name", "labels", "value"}, one per sample, in the exposition's order.
"""

from __future__ import annotations

import json
import os
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main() -> int:
    with open(os.environ["METRICS_FILE"], encoding="utf-8") as f:
        text = f.read()
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value, "type": family.type})
    json.dump(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
