# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0
# The venvs are installed without byte-code (--no-compile, below): Python writes each module's
# byte-code on its first import instead. PYTHONDONTWRITEBYTECODE (set on our CI machines) would
# forbid that, and every process, each Ray worker included, would then compile torch,
# transformers and ray from source again (13 s more per process, measured).
unexport PYTHONDONTWRITEBYTECODE

LF_VENV := .venv-lf
LF_STAMP := $(LF_VENV)/.installed-stamp
LMMS_VENV := .venv-lmms
LMMS_STAMP := $(LMMS_VENV)/.installed-stamp

.PHONY: install demo test bench clean llamafactory-venv lmms-venv

install: $(STAMP)

# torch first, so the CPU build is the one that satisfies every later `torch>=` range.
# --no-compile: byte-compiling every installed module (torch, ray, transformers, ...) took 100 of
# the install's 160 s on 2 cores; Python compiles the modules a run imports on first use (16 s once).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dmo demo

test: $(STAMP)
	$(PY) -m pytest -q

# Headline figures side by side; writes docs/benchmarks.md. BENCH_ARGS=--quick for a smoke run.
bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

# LLaMA-Factory in a virtualenv of its own (it pins transformers <= 5.6), same CPU torch pin, for the
# tests that run its data pipeline on exported recipes. PyPI's torchvision and torchaudio do not load
# beside that torch (and transformers then fails to import): they are removed; image recipes need neither.
llamafactory-venv: $(LF_STAMP)

$(LF_STAMP): constraints.txt
	$(PYTHON) -m venv $(LF_VENV)
	$(LF_VENV)/bin/python -m pip install -q --upgrade pip
	$(LF_VENV)/bin/python -m pip install -q --no-compile torch==2.13.0
	$(LF_VENV)/bin/python -m pip install -q --no-compile llamafactory==0.9.5
	$(LF_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio
	touch $(LF_STAMP)

# dmo with its lmms-eval extra in a virtualenv of its own (about 3 GB: lmms-eval asks for wandb,
# sentence-transformers, opencv, ...), same CPU torch pin, for the test that scores a model in memory
# on a local lmms-eval task. lmms-eval's evaluator imports torchvision, and PyPI's torchvision does
# not load beside that torch ('operator torchvision::nms does not exist'): it is removed, and
# lmms-eval's image tasks then import and run without it.
lmms-venv: $(LMMS_STAMP)

$(LMMS_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(LMMS_VENV)
	$(LMMS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LMMS_VENV)/bin/python -m pip install -q --no-compile torch==2.13.0
	$(LMMS_VENV)/bin/python -m pip install -q --no-compile -e '.[lmms]'
	$(LMMS_VENV)/bin/python -m pip uninstall -q -y torchvision
	touch $(LMMS_STAMP)

clean:
	rm -rf $(VENV) $(LF_VENV) $(LMMS_VENV) .dmo build *.egg-info
