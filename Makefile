# medseg-kit: `make reproduce` runs every notebook (cpu profile); `make test` runs the tests (smoke profile).
# Both create .venv and install everything on a fresh machine. Override the torch wheels for your platform with
#   make TORCH_SPEC="torch==2.9.1 torchvision==0.24.1" test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
PROFILE ?= cpu

.PHONY: install test reproduce notebooks bench strip clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15

reproduce: $(STAMP)
	$(VENV)/bin/medseg notebooks --profile $(PROFILE) --figures-dir figures

notebooks: reproduce

bench: $(STAMP)
	$(PY) benchmarks/bench_svsnet.py
	$(PY) benchmarks/bench_deeplabv3plus.py

strip: $(STAMP)
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	rm -rf outputs runs data/synthetic .pytest_cache
