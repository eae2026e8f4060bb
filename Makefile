# scenerec: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck install chromium bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first, pinned, so that nothing pulls a CUDA build; then the project (editable) with every optional part
# (`all`: the Neo4j driver, matplotlib for the demo's report) and the dev tools that `make test` runs.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scenerec demo

lint: $(STAMP)
	$(VENV)/bin/ruff check scenerec loaders kg llm gnn transfer tests benchmarks tools
	$(VENV)/bin/ruff format --check scenerec loaders kg llm gnn transfer tests benchmarks tools

# mypy cannot follow setuptools' editable-install finder, so it checks a tree of symlinks laid out as installed.
typecheck: $(STAMP)
	rm -rf .typecheck && mkdir -p .typecheck/scenerec
	for f in scenerec/*.py scenerec/py.typed; do ln -s ../../$$f .typecheck/scenerec/; done
	for d in loaders kg llm gnn transfer; do ln -s ../../$$d .typecheck/scenerec/$$d; done
	cd .typecheck && ../$(VENV)/bin/mypy -p scenerec

# Headless Chromium (Debian's `chromium` package) for tests/test_report.py, which renders the HTML report.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
		else echo "chromium is missing and neither root nor sudo can install it: apt-get install chromium" >&2; exit 1; fi; \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends chromium; }

test: lint typecheck chromium
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/propagation.py

clean:
	rm -rf .typecheck .pytest_cache .mypy_cache build *.egg-info
