"""The set-up files agree with each other: pyproject.toml, environment.yml, the Makefile, .ci/run, README."""
import re
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {Requirement(r).name: Requirement(r) for r in reqs}


def conda_pip_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {Requirement(r).name: Requirement(r) for r in pip if not r.startswith("-e")}


def makefile_torch_pin():
    return re.search(r"^TORCH_SPEC \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_environment_yml_lists_the_same_packages_as_pyproject():
    py, conda = pyproject_requirements(), conda_pip_requirements()
    assert set(py) == set(conda), f"only in pyproject: {set(py) - set(conda)}; only in environment.yml: {set(conda) - set(py)}"
    for name, req in py.items():
        if name == "torch":
            continue
        assert req.specifier == conda[name].specifier, f"{name}: pyproject {req.specifier} vs environment.yml {conda[name].specifier}"


def test_torch_pin_is_the_same_everywhere_and_satisfies_the_range():
    pin = makefile_torch_pin()
    assert str(conda_pip_requirements()["torch"]) == pin
    version = Requirement(pin).specifier
    (exact,) = [s.version for s in version]
    assert pyproject_requirements()["torch"].specifier.contains(exact)


def test_mujoco_is_pinned_beside_dm_control():
    reqs = pyproject_requirements()
    assert str(reqs["dm-control"].specifier) == "==1.0.50"
    assert str(reqs["mujoco"].specifier) == "==3.17.0"   # mujoco 4.x crashes dm-control 1.0.50's suite.load


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M)


def test_package_data_ships_every_asset():
    """Colab installs the package from git: the results, trained networks and snapshots the chapters read must be
    in the wheel, i.e. matched by a package-data pattern."""
    import fnmatch
    import subprocess

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cfgrl_core"]
    tracked = subprocess.run(["git", "ls-files", "cfgrl_core/assets"], cwd=ROOT, capture_output=True, text=True)
    files = [f.removeprefix("cfgrl_core/") for f in tracked.stdout.split()]
    if tracked.returncode != 0 or not files:
        files = [str(p.relative_to(ROOT / "cfgrl_core")) for p in (ROOT / "cfgrl_core" / "assets").rglob("*")
                 if p.is_file()]
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert files and not missing, missing
