"""Reference figures of the code at commit 1871b5a (before the one-recipe refactor), 1 thread.

Provenance only: it imports the API of 1871b5a and does not run against later commits. Made with
    git worktree add /tmp/ref 1871b5a && cp tests/reference/*.py /tmp/ && cd /tmp/ref &&
    PYTHONPATH=. python /tmp/make_reference_1871b5a.py <repo>/tests/reference/reference_1871b5a.json
Digests are bit-exact and hold on CPUs with the same float kernels (the "fingerprint"); the first rows of
each output are also stored as numbers, compared within a tolerance on any CPU.
tests/test_recipe_identity.py compares the current code with these figures."""
import hashlib, json, sys, tempfile
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
out = Path(sys.argv[1])
def h(x):
    if isinstance(x, torch.Tensor): x = x.detach().cpu().numpy()
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
ref = {"commit": "1871b5a", "threads": 1}
# 0. this CPU's float kernels: bit-identity below holds only on a CPU whose fingerprint matches
from float_fingerprint import float_fingerprint   # beside this script, so on sys.path
ref["fingerprint"] = float_fingerprint()
def v(x): return np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)[:4].tolist()
from cfgrl_core.run import run, load_trained, trained_asset
from cfgrl_core.td3 import load_actor
from cfgrl_core.collect import ensure_dataset
from cfgrl_core.dataset import episode_files
data = Path(tempfile.mkdtemp())
# 1. smoke runs
ref["smoke"] = {}
for task in ("walker-run", "cheetah-run"):
    r = run(task, 0, "smoke", data / "runs", data, device="cpu", progress=False)
    ref["smoke"][task] = {k: r[k] for k in ("cfgrl_val", "cfgrl_test", "awr_val", "awr_test", "headline",
                                            "positive_fraction", "advantage_quantiles", "curves")}
# 2. smoke datasets: per-episode array hashes
ref["smoke_episodes"] = {}
for domain in ("walker", "cheetah"):
    files = episode_files(data, domain, "td3_snapshots")
    ref["smoke_episodes"][domain] = {f.name: {k: h(np.load(f, allow_pickle=False)[k]) for k in
                                     ("observation", "action", "reward", "discount", "physics")} for f in files}
# 3. TD3 snapshots: actions on fixed inputs
import cfgrl_core
assets = Path(cfgrl_core.__file__).parent / "assets"
ref["td3"] = {}
for f in sorted((assets / "td3").glob("*/*.pt")):
    actor, meta = load_actor(f)
    x = torch.randn(64, actor.obs_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref["td3"][f"{f.parent.name}/{f.name}"] = h(actor(x))
        ref.setdefault("td3_values", {})[f"{f.parent.name}/{f.name}"] = v(actor(x))
# 4. trained networks
ref["trained"] = {}
for task in ("walker-run", "cheetah-run"):
    t = load_trained(trained_asset(task, 0), "cpu")
    obs_dim = t["policy"].config.obs_dim; act_dim = t["policy"].config.action_dim
    obs = torch.randn(32, obs_dim, generator=torch.Generator().manual_seed(1))
    e = {}
    for w in (0.0, 1.0, 3.0):
        e[f"policy_w{w:g}"] = h(t["policy"].sample(obs, 1, w, num_samples=4, seed=0))
    for T, a in t["awr"].items():
        e[f"awr_T{T:g}_mean"] = h(a.act(obs))
        e[f"awr_T{T:g}_logstd"] = h(a.log_std)
    acts = torch.rand(32, act_dim, generator=torch.Generator().manual_seed(2)) * 2 - 1
    e["critic_q"] = h(t["critic"].q_values(obs, acts)); e["critic_v"] = h(t["critic"].value(obs))
    ref["trained"][task] = e
    ref.setdefault("trained_values", {})[task] = {
        **{f"policy_w{w:g}": v(t["policy"].sample(obs, 1, w, num_samples=4, seed=0)) for w in (0.0, 1.0, 3.0)},
        **{f"awr_T{T:g}_mean": v(a.act(obs)) for T, a in t["awr"].items()},
        "critic_q": v(t["critic"].q_values(obs, acts)), "critic_v": v(t["critic"].value(obs))}
out.write_text(json.dumps(ref, indent=1))
print("ok", out)
