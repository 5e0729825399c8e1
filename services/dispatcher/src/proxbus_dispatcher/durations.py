"""Alertmanager-style durations (``1h30m``, ``200ms``, ``10s``) or plain seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNITS["y"] = 365 * _UNITS["d"]


def parse_duration(value: Any) -> float:
    """Seconds from ``1h30m``/``200ms``/``10s``/``0`` or a non-negative number.

    Raises:
        ValueError: not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"duration must be a finite, non-negative number: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return parse_duration(number)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"not a duration: {value!r} (expected e.g. 30s, 5m, 1h30m, 200ms)")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration)]
