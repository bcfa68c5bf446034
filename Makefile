# `make demo` and `make test` set everything up on a fresh machine: a .venv with alore-bench
# installed (editable, with the dev, tfds, ray and tensorboard extras), then the demo, the tests or the docs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all docs install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A first install takes about 7 GB (PyTorch's CUDA build among it): say so before pip fills the disk.
NEED_KB := 7500000

$(STAMP): pyproject.toml | $(BIN)/python
	@if ! ls -d $(VENV)/lib/python*/site-packages/torch >/dev/null 2>&1; then \
	  free=$$(df -Pk $(VENV) | awk 'NR==2 {print $$4}'); \
	  if [ "$$free" -lt $(NEED_KB) ]; then \
	    echo "make: installing into $(VENV) needs about 7.5 GB free, its disk has $$((free / 1000000)) GB: free some space or pass VENV=/a/folder/with/room" >&2; \
	    exit 1; \
	  fi; \
	fi
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev,tfds,ray,tensorboard]"
	@# Byte-compiled on every core instead (pip compiles one file at a time; these machines set
	@# PYTHONDONTWRITEBYTECODE, so nothing is compiled later). A few vendored Python 2 files do not
	@# compile, as under pip: those are skipped.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib/python*/site-packages > /dev/null 2>&1 || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/alore-bench demo

# The fast tier: unit tests, command-line wiring and the docs checks (a few minutes on 2 cores).
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -m "not slow" tests/unit tests/cli tests/docs

# Everything, real processes included (kills, concurrency, workers, Ray): what CI runs.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q --durations=25 tests

# The documentation site: the CLI reference regenerated from the app, then a strict MkDocs build.
docs: $(STAMP)
	$(BIN)/typer alore_bench.cli.app utils docs --name alore-bench --output docs/cli.md
	$(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) build site *.egg-info
