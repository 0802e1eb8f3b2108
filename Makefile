# Two commands set everything up on a fresh machine (Python 3.11 + pip):
#   make demo   -- get Fashion-MNIST (the Debian package, if needed), create .venv, install,
#                  run the main job on the embedded dataset, write runs/demo/report.html
#   make test   -- create .venv, install with the test extra, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo
DATA_DIR ?= $(CURDIR)/data/tfds
STAMP := $(VENV)/.installed
# Where your Fashion-MNIST files are, if not installed by Debian: make demo MANUAL_DIR=<folder>
MANUAL_DIR ?=
MANUAL_FLAG := $(if $(MANUAL_DIR),--manual_dir=$(MANUAL_DIR))

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test bench peers venv clean clean-runs clean-data

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# First the Fashion-MNIST files (seconds: found, or the Debian package installed, or one line
# saying what to do), then the venv (minutes), then the demo; it ends with $(WORKDIR)/report.html.
demo:
	@$(PYTHON) tools/ensure_fashion_mnist.py --data_dir=$(DATA_DIR) $(MANUAL_FLAG)
	@$(MAKE) --no-print-directory $(STAMP)
	$(PY) -m experiments.main --experiment=demo --preset=demo \
	    --data_dir=$(DATA_DIR) --workdir=$(WORKDIR) $(MANUAL_FLAG)

# Two workers, each test file on one of them (--dist loadfile: a module's fixtures are built
# once): 458 s against 652 s in one process on 2 cores.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

# The five speed benchmarks at full size (about 10-15 minutes on 2 cores): prints the table
# and writes runs/benchmarks/full.json; see benchmarks/README.md.
bench: $(STAMP)
	$(PY) -m benchmarks.run --size=full

# The peer libraries of benchmarks/peers_bench.py (optional): Cornac 3.0.1 from its wheel and
# LightFM 1.18.7 (lightfm-next) built from its source distribution, since its wheel's compiled
# module does not load on Debian 12 (needs gcc and the Python headers). Then:
#   .venv/bin/python -m benchmarks.peers_bench --data_dir=data/tfds
peers: $(STAMP)
	$(PY) -m pip install --quiet --no-binary=lightfm-next -e '.[peers]'

clean-runs:
	rm -rf runs

clean-data:
	rm -rf data

clean: clean-runs
	rm -rf $(VENV) *.egg-info
