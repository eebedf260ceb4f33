import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def label_policy():
    from cfgrl_core import FlowPolicy, FlowPolicyConfig

    torch.manual_seed(0)
    return FlowPolicy(FlowPolicyConfig(obs_dim=5, action_dim=3, hidden_dims=(32, 32)), device="cpu")


@pytest.fixture
def goal_policy():
    from cfgrl_core import FlowPolicy, FlowPolicyConfig

    torch.manual_seed(0)
    cfg = FlowPolicyConfig(obs_dim=4, action_dim=2, condition="goal", goal_dim=3, hidden_dims=(32, 32, 32, 32),
                           activation="gelu", layer_norm=False, time_embedding="scalar", init="xavier_uniform")
    return FlowPolicy(cfg, device="cpu")


def make_batch(n=64, obs=5, act=2, seed=0):
    """A random offline-RL batch (observations, actions in [-1, 1], rewards, next observations, masks)."""
    g = torch.Generator().manual_seed(seed)
    return {"observations": torch.randn(n, obs, generator=g), "actions": torch.rand(n, act, generator=g) * 2 - 1,
            "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs, generator=g),
            "masks": torch.ones(n)}


@pytest.fixture
def batch():
    return make_batch()


@pytest.fixture
def small_agents():
    """A small IQL critic, CFGRL actor and AWR actor for 5-d states and 2-d actions, on the CPU."""
    from cfgrl_core.agents.awr import AWRAgent
    from cfgrl_core.agents.cfgrl import CFGRLAgent
    from cfgrl_core.agents.iql import IQLAgent

    torch.manual_seed(0)
    small = {"hidden_dims": (32, 32)}
    return (IQLAgent(5, 2, small, "cpu"), CFGRLAgent(5, 2, {**small, "sample_steps": 4}, "cpu"),
            AWRAgent(5, 2, small, "cpu"))


@pytest.fixture(scope="session")
def smoke_notebook(tmp_path_factory):
    """``run(path)``: the chapter executed in smoke mode with papermill, once per test session, as the path of the
    executed copy. The notebook tests read it and the book build renders it, so no chapter is executed twice.
    A failed execution is remembered and re-raised for every test that asks for that chapter."""
    from pathlib import Path

    out = tmp_path_factory.mktemp("smoke-notebooks")
    done = {}

    def run(path):
        path = Path(path)
        if path not in done:
            import papermill

            saved = {k: os.environ.get(k) for k in ("CFGRL_SMOKE", "CFGRL_DATA", "MPLBACKEND")}
            # smoke sizes; a dataset folder of the chapter's own (never the reader's cache, and no chapter
            # relies on data another made); the kernel keeps its inline backend so figures are embedded
            os.environ.update(CFGRL_SMOKE="1", CFGRL_DATA=str(out / "data" / path.stem))
            os.environ.pop("MPLBACKEND", None)
            try:
                papermill.execute_notebook(str(path), str(out / path.name), kernel_name="python3",
                                           cwd=str(path.parent), progress_bar=False, log_output=False,
                                           execution_timeout=1800)
                done[path] = out / path.name
            except Exception as err:   # noqa: BLE001 - re-raised below, for each test that needs this chapter
                done[path] = err
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        if isinstance(done[path], Exception):
            raise RuntimeError(f"{path.name} failed in smoke mode: {done[path]}") from done[path]
        return done[path]

    return run
