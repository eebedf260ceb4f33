# The two commands of the README:
#   make book   - set up .venv (first run), execute the notebooks, build the HTML book
#   make test   - set up .venv (first run), run unit tests, smoke-run every notebook with papermill, build the book with -W
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of torch 2.13.0 lies on the project's machines; elsewhere pip fetches the build for your platform.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Run everything from the venv, with its own Jupyter kernel ("python3") found first.
export PATH := $(abspath $(BIN)):$(PATH)
export JUPYTER_PATH := $(abspath $(VENV))/share/jupyter
export MUJOCO_GL ?= egl

.PHONY: book test install clean colab-check

book: $(STAMP)
	$(BIN)/jupyter-book build -W -n --keep-going .
	@echo ""
	@echo "The book is at: $(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[control,book,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cfgrl)" >/dev/null
	# ipywidgets 7.7.1 (what Colab ships) beside the venv's 8.x: the slider test runs the helper under both
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade --target .cache/ipywidgets7 --no-deps \
		ipywidgets==7.7.1 ipython_genutils==0.2.0
	touch $(STAMP)

# Not part of CI (it downloads packages): the notebooks under Colab's pins, installed by their own install cell.
colab-check:
	bash .ci/colab-check

clean:
	rm -rf _build
