"""Nested config and metrics data as flat, dotted columns (for `regexp export` and TensorBoard's HParams).

Pure Python, no TensorFlow.
"""

from __future__ import annotations


def flatten(data, prefix: str = "") -> dict:
    """{"a": {"b": 1}, "c": [{"d": 2}]} -> {"a.b": 1, "c.0.d": 2}.

    Dicts and lists of dicts are opened into dotted keys (a list by index); a list of plain
    values (e.g. targets: [kernel, bias]) stays one value, joined by commas; an empty dict
    or list of dicts contributes nothing.
    """
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        items = ((str(i), item) for i, item in enumerate(data))
    else:
        value = ",".join(str(item) for item in data) if isinstance(data, list) else data
        return {prefix: value} if prefix else {}
    out: dict = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
