"""Print a benchmark's figures: aligned for a person, or one JSON object with --json."""

from __future__ import annotations

import json
from collections.abc import Mapping


def emit(result: Mapping[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:>{width}}: {v}")
