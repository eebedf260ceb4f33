"""The whole book builds with warnings as errors (-W -n --keep-going) from the smoke-executed chapters; the static
guidance player works in a headless browser with no kernel and no network."""
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def built_book(tmp_path_factory, smoke_notebook):
    """The book built from a copy of its sources in which every chapter is the smoke-executed notebook that the
    notebook tests ran (papermill, once per session), with execution off: the build renders those outputs instead of
    executing every chapter a second time. `make book` builds the same sources and executes them itself."""
    out = tmp_path_factory.mktemp("book")
    src = out / "src"
    shutil.copytree(ROOT / "book", src / "book", ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    shutil.copy(ROOT / "_toc.yml", src / "_toc.yml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for chapter in toc["chapters"]:
        shutil.copy(smoke_notebook(ROOT / f"{chapter['file']}.ipynb"), src / f"{chapter['file']}.ipynb")
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", "-W", "-n", "--keep-going", "--path-output", str(out), str(src)],
                          cwd=src, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    return out / "_build" / "html"


def test_book_builds_with_warnings_as_errors(built_book):
    html = built_book
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
    for name in ("04_training_the_flow_policy", "05_guidance_versus_weighting"):
        text = (html / "book" / f"{name}.html").read_text()
        assert "<p>|" not in text and text.count("<table") >= 2, f"{name}: a Markdown table output did not render"
    slider_page = (html / "book" / "06_drag_the_guidance.html").read_text()
    assert slider_page.count("<video") >= 6 and 'class="cfgrl-player"' in slider_page
    assert "w = 0: return" in slider_page   # the rollout captions give each rollout's return
    for page in (html / "book").glob("*.html"):   # MathJax is served by the book itself, not by a CDN
        text = page.read_text()
        assert "cdn.jsdelivr.net/npm/mathjax" not in text, page.name
        assert "_static/mathjax/tex-mml-chtml.js" in text, page.name
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert any((html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def _pixels(png: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian package `chromium`; .ci/run "
                                             "installs it): the static-slider browser test was skipped")
def test_static_slider_in_headless_chromium(built_book, tmp_path):
    from playwright.sync_api import sync_playwright

    page_path = built_book / "book" / "06_drag_the_guidance.html"
    foreign = []   # requests to any other host, which the page may make for fonts/MathJax, but never for the slider
    with sync_playwright() as p:
        # a fresh profile (--user-data-dir) per run, as Playwright wants it passed
        browser = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path), executable_path=CHROMIUM, headless=True,
            viewport={"width": 1280, "height": 1600},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        page = browser.new_page()

        def block_other_hosts(route):
            foreign.append(route.request.url)
            route.abort()

        page.route(lambda url: not url.startswith(("file:", "data:", "blob:")), block_other_hosts)
        page.goto(page_path.as_uri(), wait_until="load")
        player = page.locator(".cfgrl-player").first
        player.scroll_into_view_if_needed()
        image = player.locator("img[id$='-img']")
        rng = player.locator("input[type=range]")
        shots = []
        for position in ("0", rng.get_attribute("max")):
            rng.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", position)
            page.wait_for_timeout(200)
            shots.append(_pixels(image.screenshot()))
            assert image.get_attribute("src").startswith("data:image/png;base64,")
        browser.close()
    a, b = shots
    assert a.shape == b.shape
    changed = float((np.abs(a - b).max(-1) > 0.02).mean())
    report = (f"static slider: {changed:.1%} of the plot's pixels changed between the two positions; "
              f"{len(foreign)} requests to other hosts were blocked (none needed by the player): {foreign[:5]}")
    print(report)
    (built_book.parent / "browser-test.txt").write_text(report + "\n")
    assert changed > 0.005, "moving the static slider did not change the plot"


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian package `chromium`; .ci/run "
                                             "installs it): the offline-math browser test was skipped")
def test_math_renders_offline_in_headless_chromium(built_book, tmp_path):
    """Every page, with every request that is not a local file blocked: MathJax typesets all formulas (no raw TeX
    delimiters are left in the visible text)."""
    from playwright.sync_api import sync_playwright

    pages = sorted((built_book / "book").glob("*.html"))
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path), executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.route(lambda url: not url.startswith(("file:", "data:", "blob:")), lambda route: route.abort())
        for path in pages:
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
            page.evaluate("() => MathJax.startup.promise")
            text = page.inner_text("article")
            results[path.name] = (page.locator("mjx-container").count(),
                                  [d for d in ("\\(", "\\[", "$$") if d in text])
        browser.close()
    report = "offline math: " + "; ".join(f"{n}: {c} formulas, raw {raw or 'none'}" for n, (c, raw) in results.items())
    print(report)
    (built_book.parent / "browser-math-test.txt").write_text(report + "\n")
    assert all(not raw for _, raw in results.values()), report
    assert all(c > 0 for name, (c, _) in results.items() if name != "intro.html"), report
