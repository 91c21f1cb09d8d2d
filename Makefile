# The only task runner. Every target is a thin call into .venv (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# One xdist worker more than there are CPUs: most tests wait on Temporal, subprocesses and sockets, so
# on 2 CPUs 3 workers finished the suite in 548 s against 686 s with 2 (and 585 s with 4). Files are
# handed out in collection order, which tests/conftest.py starts with the slow ones (511 s).
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: install demo test test-faults lint typecheck bench fmt clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy tests bench

# The slow fault tests (worker kills wait out Temporal timeouts) run only in `make test-faults`.
test: install lint typecheck
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not faults_slow" $(PYTEST_ARGS)

# Every fault-injection test (tests/faults, docs/faults.md): each starts its own full stack.
test-faults: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m faults tests/faults $(PYTEST_ARGS)

demo: install
	$(BIN)/extctl demo

bench: install
	$(BIN)/python -m bench

clean:
	-$(BIN)/extctl dev down
	rm -rf $(VENV) .extplane .mypy_cache .ruff_cache

# Regenerate schema/manifest.schema.json from the manifest model (tests/schema/test_manifest_schema.py
# fails when the checked-in copy drifts).
.PHONY: schema
schema: install
	$(BIN)/python -c "import json; from schema.manifest import manifest_json_schema; open('schema/manifest.schema.json', 'w').write(json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + '\n')"

# Regenerate the reference section of docs/manifest.md from schema/manifest.schema.json
# (tests/docker/test_docs.py fails when it drifts).
.PHONY: docs
docs: install
	$(BIN)/python -m tools.manifest_docs
