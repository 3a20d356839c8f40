# medseg-kit: `make lab` opens notebook 00 in JupyterLab; `make reproduce` runs every notebook (cpu profile); `make test`
# runs the tests (smoke profile).
# `make docs` builds the documentation site (outputs/site/<profile>/index.html: README, docs/, the executed notebooks of
# `make reproduce`; MkDocs with mkdocs.yml, readable offline; 24 s for the notebooks without outputs on 2 cores).
# All of them create .venv and install everything on a fresh machine. Override the torch wheels for your platform with
#   make TORCH_SPEC="torch==2.9.1 torchvision==0.24.1" test
# A machine without an NVIDIA GPU can take PyTorch's CPU-only wheels (no CUDA libraries or triton: a .venv of about
# 1.8 GB instead of 6.4 GB) from PyTorch's CPU index, on a fresh clone or after `rm -rf .venv`:
#   make TORCH_INDEX=https://download.pytorch.org/whl/cpu install
# Empty (the default), torch comes from pip's own configuration (PyPI, or the mirror pip is set up for).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
STAMP := $(VENV)/.installed
PROFILE ?= cpu
# Options of benchmarks/bench.py, e.g. make bench BENCH_ARGS="--sizes 256 --csv benchmarks/results.csv"
BENCH_ARGS ?=

.PHONY: install notebook-filter lab chromium test reproduce notebooks docs bench strip clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	@$(MAKE) --no-print-directory notebook-filter
	touch $(STAMP)

install: $(STAMP)

# Notebooks stay clean in git: nbstripout, installed as a git filter, strips outputs and execution counts from a
# notebook when it is staged (cell ids kept, so committed notebooks do not change); `git diff` shows the stripped
# view. Part of the set-up; outside a git checkout there is nothing to install.
notebook-filter:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		$(VENV)/bin/nbstripout --install && \
		git config filter.nbstripout.clean '"$(abspath $(PY))" -m nbstripout --keep-id' && \
		git config diff.ipynb.textconv '"$(abspath $(PY))" -m nbstripout --keep-id -t' && \
		echo "notebook filter installed: git strips notebook outputs when they are staged (nbstripout)"; \
	else echo "not a git checkout: no notebook filter to install"; fi

# The browser test (tests/test_browser.py) drives Debian's chromium with Playwright; as root (CI containers) it is
# installed here when missing, otherwise the test skips and says how to install it.
chromium:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium); \
	else echo "chromium not found: tests/test_browser.py will skip (sudo apt-get install chromium)"; fi

# JupyterLab on the first notebook, after the set-up (the README's first command).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/00_quickstart.ipynb

test: $(STAMP) chromium
	$(PY) -m pytest -n 2 --durations=15

reproduce: $(STAMP)
	$(VENV)/bin/medseg notebooks --profile $(PROFILE) --figures-dir figures

notebooks: reproduce

docs: $(STAMP)
	$(PY) -m medseg_core.site --profile $(PROFILE)

bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

strip: $(STAMP)
	$(VENV)/bin/nbstripout --keep-id notebooks/*.ipynb

clean:
	rm -rf outputs runs data/synthetic .pytest_cache
