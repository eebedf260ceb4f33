"""The whole book builds with warnings as errors (-W -n --keep-going), notebooks executed in smoke mode."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "CFGRL_SMOKE": "1", "CFGRL_DATA": str(tmp_path / "data")}
    env.pop("MPLBACKEND", None)   # the kernel must keep its inline backend to embed figures
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", "-W", "-n", "--keep-going", "--path-output", str(tmp_path), str(ROOT)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for chapter in toc["chapters"]:
        page = html / f"{chapter['file']}.html"
        text = page.read_text()
        assert text.count("<img") >= 2, f"{page.name} shows no figures"
        assert "colab.research.google.com" in text, f"{page.name} has no Colab launch button"
        assert "Traceback" not in text
    assert (html / "book" / "intro.html").exists()
    data_page = (html / "book" / "03_offline_data.html").read_text()
    assert data_page.count("<video") >= 6 and "data:video/mp4;base64," in data_page   # inline, no network
