"""Task rewards from stored physics states (the ExORL convention).

ExORL stores the MuJoCo physics state of every step, so the reward of *any* task of the domain can be computed
after the fact:  reward[i] = task.get_reward(physics with state physics[i]).  Transition t of an episode uses
observation[t] -> observation[t+1], action[t+1] and reward[t+1] (row 0 of action and reward is a placeholder).
"""
from __future__ import annotations

import numpy as np

from .envs import make_env

_ENV_CACHE: dict = {}


def _task_env(domain: str, task: str):
    key = (domain, task)
    if key not in _ENV_CACHE:
        _ENV_CACHE[key] = make_env(domain, task, seed=0)
    return _ENV_CACHE[key]


def relabel_rewards(domain: str, task: str, physics_states: np.ndarray) -> np.ndarray:
    """Reward of ``domain``-``task`` at each physics state: shape (T+1, 1) float32, row i from physics[i]."""
    states = np.asarray(physics_states, dtype=np.float64)
    env = _task_env(domain, task)
    n_state = env.physics.get_state().shape[0]
    if states.ndim != 2 or states.shape[1] != n_state:
        raise ValueError(f"physics states for {domain} must have shape (T+1, {n_state}), got {states.shape}")
    out = np.empty((states.shape[0], 1), np.float32)
    physics = env.physics
    with physics.reset_context():   # controls, time and warnings to their reset values once; nothing steps after
        pass
    for i, s in enumerate(states):   # positions and velocities set, then mj_forward: sensors and kinematics of s
        physics.set_state(s)
        physics.forward()
        out[i, 0] = env.task.get_reward(physics)
    return out
