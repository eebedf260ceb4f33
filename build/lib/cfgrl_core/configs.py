"""Config dicts: defaults overridden by the caller's keys, with unknown keys refused by name."""
from __future__ import annotations


def merge_config(defaults: dict, overrides: dict | None, what: str) -> dict:
    """{**defaults, **overrides}; raises ValueError naming any key ``defaults`` does not have."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known: {sorted(defaults)}")
    return {**defaults, **overrides}
