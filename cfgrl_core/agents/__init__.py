"""Offline-RL agents, one per file in the style of OGBench's ``impls/agents``: each holds its networks and its
optimiser, writes its losses as methods, takes one gradient step with ``update``, and ends with its ``CONFIG``.

  * :mod:`.iql`    the IQL critic: Q, V and the advantage A(s, a) = Q(s, a) - V(s) the actors take;
  * :mod:`.cfgrl`  the guided flow actor: labels o = 1[A >= 0], the official CFGRL loss, sampling at any w;
  * :mod:`.awr`    the Gaussian AWR actor: weights min(exp(T A), 100), the mean action.

The runner (:mod:`cfgrl_core.run`) only calls ``update``: the critic's ``update(batch)``, each actor's
``update(batch, advantage)``.
"""
from __future__ import annotations


def merge_config(defaults: dict, overrides: dict | None, what: str) -> dict:
    """{**defaults, **overrides}; raises ValueError naming any key ``defaults`` does not have."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known: {sorted(defaults)}")
    return {**defaults, **overrides}
