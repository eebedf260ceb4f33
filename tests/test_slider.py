"""The guidance slider: the view, the live widget in a real kernel under ipywidgets 7 (Colab's) and 8, the static
player, and bad inputs. The browser test of the static player in the built book is in test_book.py."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cfgrl_core.agents.iql import IQLAgent
from cfgrl_core.networks import FlowPolicyConfig
from cfgrl_core.policy import FlowPolicy
from cfgrl_core.slider import GuidanceView, guidance_widget, static_player_html

ROOT = Path(__file__).resolve().parents[1]
IPYWIDGETS7 = ROOT / ".cache" / "ipywidgets7"


def small_view(k=16):
    torch.manual_seed(0)
    policy = FlowPolicy(FlowPolicyConfig(obs_dim=5, action_dim=6, hidden_dims=(32,)), device="cpu")
    critic = IQLAgent(5, 6, {"hidden_dims": (32,)}, "cpu")
    return GuidanceView(policy, critic, torch.randn(3, 5), num_samples=k, steps=4)


def test_view_moves_samples_continuously_and_w0_is_flow_bc():
    view = small_view()
    a0, _ = view.sample(1, 0.0)
    s = view.draw(1, 0.0)
    assert s["mean_q"] == pytest.approx(s["bc_mean_q"]) and s["spread"] == pytest.approx(s["bc_spread"])
    a_small, _ = view.sample(1, 0.01)
    a_big, _ = view.sample(1, 5.0)
    # the same noise at every w: a tiny change of w moves samples a little, a big one a lot
    assert np.abs(a_small - a0).max() < 0.1 < np.abs(a_big - a0).max()


def test_static_player_is_self_contained():
    view = small_view()
    page = static_player_html(view, 0, [0, 2, 8], frame=np.zeros((10, 12, 3), np.uint8), caption="cap")
    assert page.count("data:image/png;base64,") == 3 + 1 + 1   # 3 frames in the JS list, the shown one, the state
    assert "http" not in page and "<script src" not in page
    assert 'type="range"' in page and 'max="2"' in page
    frames = json.loads(page.split("var images = ")[1].split(", labels")[0])
    assert len(set(frames)) == 3, "the figure must differ between w values"
    assert base64.b64decode(frames[0].split(",")[1])[:4] == b"\x89PNG"


def test_bad_inputs_to_the_slider():
    view = small_view()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="w must be a finite number >= 0"):
            view.draw(0, bad)
    with pytest.raises(ValueError, match="state_index must lie in 0..2"):
        view.draw(3, 1.0)
    with pytest.raises(ValueError, match="w_max must be a finite number > 0.1"):
        guidance_widget(view, w_max=float("nan"))
    with pytest.raises(ValueError, match="frames has 1 images for 3 states"):
        guidance_widget(view, frames=[np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match="obs must have shape"):
        GuidanceView(view.policy, view.critic, torch.randn(3, 4))


KERNEL_CODE = '''
import json, ipywidgets, torch
from IPython.display import display
from cfgrl_core.agents.iql import IQLAgent
from cfgrl_core.networks import FlowPolicyConfig
from cfgrl_core.policy import FlowPolicy
from cfgrl_core.slider import GuidanceView, guidance_widget
torch.manual_seed(0)
policy = FlowPolicy(FlowPolicyConfig(obs_dim=5, action_dim=6, hidden_dims=(32,)), device="cpu")
view = GuidanceView(policy, IQLAgent(5, 6, {"hidden_dims": (32,)}, "cpu"), torch.randn(3, 5), num_samples=16, steps=4)
box = guidance_widget(view, w=1.0)
display(box)
c = box.controls
seen = [c["plot"].value]
c["w"].value = 6.0                       # a drag of the linear slider redraws
seen.append(c["plot"].value)
c["log_scale"].value = True              # switching to the log slider keeps w and redraws
c["w_log"].value = 0.3
seen.append(c["plot"].value)
c["state"].value = 2                     # picking another state redraws
seen.append(c["plot"].value)
print(json.dumps({"version": ipywidgets.__version__, "distinct": len(set(seen)),
                  "log_display": c["w_log"].layout.display, "latency": box.last_latency_ms}))
'''


@pytest.mark.parametrize("flavour", ["ipywidgets7", "ipywidgets8"])
def test_live_widget_in_a_kernel(tmp_path, flavour):
    import nbformat

    env = {**os.environ, "MPLBACKEND": "Agg"}
    if flavour == "ipywidgets7":
        if not IPYWIDGETS7.exists():
            pytest.fail(f"{IPYWIDGETS7} is missing: `make install` puts ipywidgets 7.7.1 there")
        env["PYTHONPATH"] = os.pathsep.join([str(IPYWIDGETS7), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(KERNEL_CODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "widget.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    proc = subprocess.run([sys.executable, "-m", "papermill", "-k", "python3", str(src), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = nbformat.read(out, 4).cells[0].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
    result = json.loads(next(o["text"] for o in outputs if o.get("name") == "stdout").strip().splitlines()[-1])
    assert result["version"].startswith("7." if flavour == "ipywidgets7" else "8.")
    assert result["distinct"] == 4 and result["log_display"] is None and result["latency"] > 0


def test_blitted_update_is_pixel_identical_to_a_full_render():
    """Dragging w redraws only what changed over the state's cached background; the picture must be the one a
    fresh view renders from scratch at that w (and a switch of state must redraw the background)."""
    from PIL import Image
    import io

    dragged = small_view()
    dragged.draw(0, 1.0), dragged.png()
    dragged.draw(0, 4.0)
    blitted = dragged.png()
    fresh = small_view()
    fresh.draw(0, 4.0)
    as_array = lambda png: np.asarray(Image.open(io.BytesIO(png)))  # noqa: E731
    assert np.array_equal(as_array(blitted), as_array(fresh.png()))
    dragged.draw(2, 4.0)                     # another state: its Q axis (and so the background) differs
    other = small_view()
    other.draw(2, 4.0)
    assert np.array_equal(as_array(dragged.png()), as_array(other.png()))
