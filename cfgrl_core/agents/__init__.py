"""Offline-RL agents: one file each, a config dict, an ``update(batch)`` that does one gradient step of everything."""
