"""What cfgrl_core writes to disk and reads back: atomic writes, and one versioned checkpoint format.

Atomic writes go to a temporary file in the target's directory, are fsync'ed, then renamed over the target: a crash
or an exception mid-write leaves the previous file (or no file), never a half-written one. Episodes, caches,
results and checkpoints are all written this way.

A checkpoint is a torch file holding ``{"format": "cfgrl_core", "version": 2, "kind": ..., ...}``, read with
``torch.load(..., weights_only=True)`` so nothing is unpickled. Every network in it is a *module record*
``{"kind", "spec", "state_dict"}``: ``kind`` names its class, ``spec`` holds its constructor arguments, so a
network is rebuilt exactly as it was made (no shapes inferred, no keys renamed). Kinds of file:

  * ``"module"``   one network and its metadata: a flow policy (:func:`save_policy`), a TD3 actor snapshot;
  * ``"run"``      the runner's resumable state: its config, progress, random-generator state, every agent and
                   every optimiser (:mod:`cfgrl_core.run`);
  * ``"trained"``  a finished run's agents without optimiser state: what the book ships (:func:`export_trained`).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import torch

from .networks import default_device

FORMAT = "cfgrl_core"
VERSION = 2
ASSETS = Path(__file__).parent / "assets"


class CheckpointError(ValueError):
    """A checkpoint file is corrupted, of another format, version or kind, or does not match its config."""


# ------------------------------------------------------------------------------------------------ atomic writes
def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a binary temporary file, then atomically replace ``path`` with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


# -------------------------------------------------------------------------------------------- the file format
def save_checkpoint(path: str | os.PathLike, kind: str, **payload) -> Path:
    """Write ``{"format", "version", "kind", **payload}`` to ``path`` atomically."""
    return atomic_write(path, lambda f: torch.save({"format": FORMAT, "version": VERSION, "kind": kind, **payload}, f))


def read_checkpoint(path: str | os.PathLike, kinds: tuple[str, ...] | str | None = None) -> dict:
    """The payload of a checkpoint file, on the CPU. Raises FileNotFoundError for a missing file and CheckpointError
    naming the file and the problem for a corrupted file or one of another format, version or kind."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, random bytes, a pickle needing code, ...
        raise CheckpointError(f"checkpoint {path} is corrupted or not a torch file ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {payload.get('version')!r}; this cfgrl_core "
                              f"reads version {VERSION}")
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if kinds is not None and payload.get("kind") not in kinds:
        raise CheckpointError(f"checkpoint {path} holds a {payload.get('kind')!r}, expected {' or '.join(kinds)}")
    return payload


def _module_classes() -> dict:
    from .agents.awr import AWRAgent
    from .agents.cfgrl import CFGRLAgent
    from .agents.gcbc import GCBCAgent
    from .agents.goal_cfgrl import GoalCFGRLAgent
    from .agents.iql import IQLAgent
    from .policy import FlowPolicy
    from .rnd import RNDActor
    from .td3 import Actor

    return {cls.KIND: cls for cls in (FlowPolicy, IQLAgent, CFGRLAgent, AWRAgent, Actor, GoalCFGRLAgent, GCBCAgent,
                                      RNDActor)}


def module_record(module: torch.nn.Module) -> dict:
    """{"kind", "spec", "state_dict"} of a network that has a ``KIND`` and a ``spec()``; tensors on the CPU."""
    return {"kind": module.KIND, "spec": module.spec(),
            "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}


def build_module(record: dict, device=None, where: str = "checkpoint") -> torch.nn.Module:
    """The network a module record describes, with its weights, on ``device``."""
    classes = _module_classes()
    if not isinstance(record, dict) or record.get("kind") not in classes or not {"spec", "state_dict"} <= set(record):
        kind = record.get("kind") if isinstance(record, dict) else None
        raise CheckpointError(f"{where}: not a module record of a known kind (kind {kind!r}; known: {sorted(classes)})")
    try:
        module = classes[record["kind"]].from_spec(record["spec"], device="cpu")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: invalid spec for a {record['kind']} ({type(e).__name__}: {e})") from e
    try:
        module.load_state_dict(record["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{where}: weights do not match the {record['kind']}'s spec ({e})") from e
    return module.to(default_device(device))


def save_module(module: torch.nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """One network (``kind="module"``) with its metadata, written atomically."""
    return save_checkpoint(path, "module", module=module_record(module), metadata=dict(metadata or {}))


def load_module(path: str | os.PathLike, module_kind: str | None = None, device=None) -> torch.nn.Module:
    """The network saved by :func:`save_module`, in eval mode, its metadata in ``.metadata``."""
    payload = read_checkpoint(path, "module")
    record = payload["module"]
    if module_kind is not None and record.get("kind") != module_kind:
        raise CheckpointError(f"checkpoint {path} holds a {record.get('kind')!r} network, expected {module_kind!r}")
    module = build_module(record, device, where=f"checkpoint {path}")
    module.metadata = payload.get("metadata", {})
    return module.eval()


def save_policy(policy, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save a :class:`~cfgrl_core.policy.FlowPolicy` (its config, weights and ``metadata``) atomically."""
    return save_module(policy, path, metadata)


def load_policy(path: str | os.PathLike, device=None):
    """Load a flow policy saved by :func:`save_policy` (its metadata lands in ``policy.metadata``)."""
    return load_module(path, "flow_policy", device)


# ------------------------------------------------------------------------------------------ trained networks
def trained_asset(task: str, seed: int = 0) -> Path:
    """The shipped networks of the book configuration for ``task`` and ``seed`` (see :func:`export_trained`)."""
    return ASSETS / "trained" / f"{task}_seed{seed}.pt"


def export_trained(run_checkpoint, out) -> Path:
    """Write the agents of a finished run (no optimiser or generator state) to ``out``, atomically. This is what
    the book ships for its slider, videos and gradient diagnostics (``cfgrl_core/assets/trained``)."""
    ckpt = read_checkpoint(run_checkpoint, "run")
    if ckpt["state"]["phase"] < ckpt["state"]["phases"]:
        raise CheckpointError(f"{run_checkpoint} is from an unfinished run (phase {ckpt['state']['phase']} of "
                              f"{ckpt['state']['phases']})")
    return save_checkpoint(out, "trained", config=ckpt["config"], agents=ckpt["agents"])


def load_trained(path, device=None) -> dict:
    """The agents of a finished run, from :func:`export_trained`'s file or a run's ``checkpoint.pt``, in eval mode:
    ``{"task", "seed", "config", "critic", "cfgrl", "policy" (the CFGRL agent's flow policy), "awr": {T: agent}}``."""
    payload = read_checkpoint(path, ("trained", "run"))
    agents = {name: build_module(rec, device, where=f"checkpoint {path}").eval().requires_grad_(False)
              for name, rec in payload["agents"].items()}
    cfg = json.loads(payload["config"])
    return {"task": cfg["task"], "seed": cfg["seed"], "config": cfg, "critic": agents["critic"],
            "cfgrl": agents["cfgrl"], "policy": agents["cfgrl"].policy,
            "awr": {a.config["temperature"]: a for name, a in agents.items() if name.startswith("awr")}}
