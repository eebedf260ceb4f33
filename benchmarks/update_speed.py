"""Training-step throughput of the runner's own steps, before and after, with the achieved GFLOP/s beside this
machine's matmul peak.

Times exactly what ``python -m cfgrl_core.run`` executes per step, built by the runner's own functions from its
presets (``resolve_config``, ``build_agents``, ``trained_actors``, ``actors_step``):

  * the critic step (``IQLAgent.update``) and the actors step (one CFGRL actor and one AWR actor per temperature on
    the same batch and advantages) of the frozen schedule;
  * ``--joint``: the joint schedule's step too (critic and all actors every step).

Two variants of each preset, measured side by side in this process (alternating rounds, medians):

  * ``before``: the preset with ``compile`` and ``batched`` off and the critic's twin heads unbatched: the steps as
    they were when the speed issue was filed (each network on its own, eager; the actors step computes the frozen
    critic's advantages on every batch);
  * ``after``: the preset as the runner runs it (``compile``, ``batched``: twin Q heads and the AWR sweep as batched
    networks, the frozen critic's advantages computed once for the dataset and indexed per batch).

It then prints the preset's training time predicted from those rates (critic_steps / critic rate + actor_steps /
actors rate: the preset's training steps), and for ``after`` that time plus compilation and the one-off advantage
pass. FLOPs per step are counted
by ``torch.utils.flop_counter.FlopCounterMode`` (matrix multiplies, forward and backward); the peak is the best of a
few float32 2048 x 2048 matmuls on the same threads, measured in the same run. No ratio against another
implementation is printed: such a ratio needs both measured side by side (see the README).

    python benchmarks/update_speed.py [--presets quick book] [--steps 50] [--rounds 5] [--threads 2] [--joint]
                                      [--out results.json]

``--out`` also writes the figures, with the command, commit and versions, as JSON (chapter 4 reads the committed
``cfgrl_core/assets/results/benchmarks/update_speed.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

if "--warm-cache" not in os.sys.argv:   # compile into an empty cache: the compile time a reader's first run pays
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cfgrl_core.checkpoint import atomic_write_text  # noqa: E402
from cfgrl_core.collect import SIZES  # noqa: E402
from cfgrl_core.networks import default_device  # noqa: E402
from cfgrl_core.provenance import provenance  # noqa: E402
from cfgrl_core.run import actors_step, build_agents, joint_step, resolve_config, trained_actors  # noqa: E402

BEFORE = dict(compile=False, batched=False, critic=dict(batched_heads=False))
OBS, ACT, EPISODE = 24, 6, 1000   # walker-run's sizes; 1000 transitions per episode


def random_batch(n, obs_dim, act_dim, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = {"observations": torch.randn(n, obs_dim, generator=g), "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
         "rewards": torch.rand(n, generator=g), "next_observations": torch.randn(n, obs_dim, generator=g),
         "masks": torch.ones(n)}
    return {k: v.to(device) for k, v in b.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(device, n=2048, repeats=5) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def rate(step, device, steps) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - t)


def gflop(step) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def build(preset, variant, device, joint):
    """The named steps of one variant, the time its first calls took (compilation) and its one-off costs."""
    overrides = {"before": BEFORE, "after": {}, "after, eager": {"compile": False}}[variant]
    cfg = resolve_config({"preset": preset, **overrides})
    if joint:
        cfg = resolve_config({"preset": preset, **overrides, "schedule": "joint", "critic_steps": cfg["actor_steps"]})
    torch.manual_seed(0)
    critic, actors = build_agents(cfg, OBS, ACT, device, torch.Generator(device=device).manual_seed(0))
    trained = trained_actors(cfg, actors)
    batch = random_batch(cfg["batch_size"], OBS, ACT, device)
    one_off = 0.0
    if joint:
        steps = {f"joint (critic + {len(actors)} actors)": lambda: joint_step(critic, trained, batch)}
    else:
        if cfg["batched"]:   # what the runner does: the frozen critic's advantages once, then an index per batch
            data = random_batch(SIZES[cfg["dataset"]] * EPISODE, OBS, ACT, device, seed=1)
            t = time.perf_counter()
            advantage = critic.on_dataset(data["observations"], data["actions"])["advantage"]
            sync(device)
            one_off = time.perf_counter() - t
            idx = torch.randint(0, len(advantage), (cfg["batch_size"],), device=device)
            actors_fn = lambda: actors_step(critic, trained, batch, advantage[idx])
        else:
            actors_fn = lambda: actors_step(critic, trained, batch)
        steps = {"critic": lambda: critic.update(batch), f"actors (CFGRL + {len(actors) - 1} AWR)": actors_fn}
    first = {}
    for name, step in steps.items():
        t = time.perf_counter()
        step()                      # compiles, when the variant compiles
        sync(device)
        first[name] = time.perf_counter() - t
        for _ in range(2):
            step()
    return cfg, steps, first, one_off


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["quick", "book"], help="runner presets to time")
    p.add_argument("--steps", type=int, default=50, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5, help="rounds, before and after alternating; medians shown")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--joint", action="store_true", help="also time the joint schedule's step")
    p.add_argument("--warm-cache", action="store_true",
                   help="use torch's usual compile cache (default: an empty one, so the first call is a full compile)")
    p.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    args = p.parse_args()
    record = {"provenance": provenance(), "threads": args.threads, "steps_per_round": args.steps,
              "rounds": args.rounds, "cold_compile_cache": not args.warm_cache, "rows": [], "training": []}
    torch.set_num_threads(args.threads)
    device = default_device(args.device)
    peak = matmul_peak_gflops(device)
    record.update(device=str(device), matmul_peak_gflops=round(peak, 1))
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"walker sizes (obs {OBS}, act {ACT})")
    print(f"matmul peak (float32 2048^2, best of 5): {peak:.1f} GFLOP/s")
    print(f"{'preset':6s} {'step':>26s} {'variant':>7s} {'steps/s':>8s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} "
          f"{'of peak':>7s} {'first call':>10s}")
    for preset in args.presets:
        if not args.warm_cache:   # each preset compiles from scratch, not from the graphs of the one before
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
            torch._dynamo.reset()
        for joint in ((False, True) if args.joint else (False,)):
            built = {v: build(preset, v, device, joint) for v in ("before", "after")}
            # FLOPs are counted on eager twins: a compiled function run once under FlopCounterMode stays slower after
            counted = {"before": built["before"], "after": build(preset, "after, eager", device, joint)}
            medians = {}
            for name in built["before"][1]:
                flops = {v: gflop(counted[v][1][name]) for v in built}
                rates = {"before": [], "after": []}
                for _ in range(args.rounds):   # alternating, so that a drift in the machine's speed hits both alike
                    for v in rates:
                        rates[v].append(rate(built[v][1][name], device, args.steps))
                for v in rates:
                    medians[(name, v)] = sps = statistics.median(rates[v])
                    gain = "" if v == "before" else f"  {sps / medians[(name, 'before')]:.2f}x before"
                    print(f"{preset:6s} {name:>26s} {v:>7s} {sps:8.2f} {flops[v]:10.3f} {sps * flops[v]:8.1f} "
                          f"{sps * flops[v] / peak:7.1%} {built[v][2][name]:9.1f}s{gain}", flush=True)
                    record["rows"].append({"preset": preset, "step": name, "variant": v, "steps_per_s": round(sps, 2),
                                           "gflop_per_step": round(flops[v], 4), "first_call_s": round(
                                               built[v][2][name], 1), "rounds_steps_per_s": [round(r, 2) for r in
                                                                                             rates[v]]})
            if joint:
                continue
            cfg = built["after"][0]
            steps_s, totals = {}, {}
            for v in ("before", "after"):
                (critic_name, actors_name), (_, _, first, one_off) = list(built[v][1]), built[v]
                steps_s[v] = (cfg["critic_steps"] / medians[(critic_name, v)]
                              + cfg["actor_steps"] / medians[(actors_name, v)])
                totals[v] = steps_s[v] + (sum(first.values()) + one_off if v == "after" else 0)
            print(f"{preset:6s} training ({cfg['critic_steps']} critic + {cfg['actor_steps']} actor steps): the steps "
                  f"{steps_s['before']:.0f} s -> {steps_s['after']:.0f} s ({steps_s['before'] / steps_s['after']:.2f}x); "
                  f"with compilation and the advantage pass {totals['after']:.0f} s "
                  f"({totals['before'] / totals['after']:.2f}x)", flush=True)
            record["training"].append({"preset": preset, "critic_steps": cfg["critic_steps"],
                                       "actor_steps": cfg["actor_steps"], "before_s": round(totals["before"], 1),
                                       "after_steps_s": round(steps_s["after"], 1),
                                       "after_s": round(totals["after"], 1)})
    if args.out:
        atomic_write_text(args.out, json.dumps(record, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
