"""DeepMind Control environments for the book: walker and cheetah tasks, flat observations, fast rendering.

Importing this module sets ``MUJOCO_GL`` unless it is already set (dm_control reads it at import): ``egl`` when an
EGL library is found (Mesa's software EGL works on machines without a GPU), else ``osmesa`` when libOSMesa is found. Tasks: walker-{stand, walk, run} from the suite, cheetah-run, and
cheetah-run_backward (ExORL/URLB's task: the cheetah rewarded for running backwards at the same target speed).
"""
from __future__ import annotations

import ctypes.util
import os


def default_gl_backend() -> str:
    """egl if an EGL library is installed, else osmesa if libOSMesa is, else egl (and rendering will say why)."""
    if ctypes.util.find_library("EGL"):
        return "egl"
    return "osmesa" if ctypes.util.find_library("OSMesa") else "egl"


os.environ.setdefault("MUJOCO_GL", default_gl_backend())

import numpy as np  # noqa: E402

#: The tasks of each domain whose rewards the datasets can be relabelled for.
DOMAIN_TASKS = {"walker": ("stand", "walk", "run"), "cheetah": ("run", "run_backward")}


#: What each action dimension drives (the actuators of the domain's model, in order).
ACTION_NAMES = {"walker": ("right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle"),
                "cheetah": ("back thigh", "back shin", "back foot", "front thigh", "front shin", "front foot")}


def check_domain_task(domain: str, task: str | None = None) -> None:
    if domain not in DOMAIN_TASKS:
        raise ValueError(f"unknown domain {domain!r}; known domains: {sorted(DOMAIN_TASKS)}")
    if task is not None and task not in DOMAIN_TASKS[domain]:
        raise ValueError(f"unknown task {task!r} for domain {domain!r}; known tasks: {DOMAIN_TASKS[domain]}")


def parse_task(task: str) -> tuple[str, str]:
    """'walker-run' -> ('walker', 'run'); 'cheetah-run_backward' -> ('cheetah', 'run_backward'). Checks both."""
    domain, _, name = task.partition("-")
    check_domain_task(domain, name or None)
    if not name:
        raise ValueError(f"task must look like 'walker-run', got {task!r}")
    return domain, name


def _silence_absl():
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)   # cheetah's 'settotalmass is deprecated' warning


_silence_absl()

from dm_control import suite  # noqa: E402
from dm_control.rl import control  # noqa: E402
from dm_control.suite import cheetah  # noqa: E402
from dm_control.utils import rewards  # noqa: E402


class CheetahRunBackward(cheetah.Cheetah):
    """r = tolerance(-speed, bounds=(10, inf), margin=10, linear): cheetah-run mirrored (URLB/ExORL)."""

    def get_reward(self, physics):
        return rewards.tolerance(-physics.speed(), bounds=(cheetah._RUN_SPEED, float("inf")),
                                 margin=cheetah._RUN_SPEED, value_at_margin=0, sigmoid="linear")


def make_env(domain: str, task: str, seed: int | None = 0):
    """A dm_control ``control.Environment`` for domain-task, seeded (None: random)."""
    check_domain_task(domain, task)
    _silence_absl()
    if (domain, task) == ("cheetah", "run_backward"):
        physics = cheetah.Physics.from_xml_string(*cheetah.get_model_and_assets())
        return control.Environment(physics, CheetahRunBackward(random=seed), time_limit=cheetah._DEFAULT_TIME_LIMIT)
    return suite.load(domain, task, task_kwargs={"random": seed})


def flat_observation(observation) -> np.ndarray:
    """Concatenate a dm_control observation dict (in its order) into one float32 vector."""
    return np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in observation.values()])


def fast_render_settings(physics, shadowsize: int = 1024) -> None:
    """Cheaper CPU rendering: smaller shadow maps, no multisampling (about 3x faster at 240x320)."""
    physics.model.vis.quality.shadowsize = shadowsize
    physics.model.vis.quality.offsamples = 0
