# Two entry points for a fresh machine (see README): `make main` and `make test`.
# uv installs the locked dependency set (uv.lock) in seconds; pip's resolver takes minutes here.
UV_VERSION := 0.13.8
# A freshly pip-installed uv may not be on PATH yet (pyenv shims): fall back to `python3 -m uv`.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --frozen --extra test

.PHONY: main test test-random test-parallel test-slow test-azure-live lab labext bench setup browser-deps azurite-deps lint mutate

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set
# (as on our CI machines) Python never does either: every process then compiled every module it
# imported, each time (`import azure.ai.ml` 5.1 s -> 2.8 s with them; ~15 s once, at setup).
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --extra test --compile-bytecode
	@$(RUN) python -m compileall -q pfmagic widgets  # the editable install's own modules
	@$(RUN) python labextension/develop.py

# The teaching notebook end to end on the local backend; prints the chat transcript.
main: setup
	$(RUN) python notebooks/run.py

# Open the teaching notebooks in JupyterLab.
lab: setup
	$(RUN) jupyter lab notebooks/01-deploy-local.ipynb

# Rebuild the prebuilt JupyterLab extension (YAML highlighting of %%pf_* cells) after a change
# under labextension/: node + npm, against the venv's JupyterLab; commit labextension/prebuilt/.
LABEXT_CORE = $$($(RUN) python -c "import jupyterlab, os; print(os.path.dirname(jupyterlab.__file__))")/staging
labext: setup
	cd labextension && npm ci --no-audit --no-fund --loglevel=error
	rm -rf labextension/lib labextension/prebuilt
	cd labextension && node_modules/.bin/tsc -p . && \
		node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$(LABEXT_CORE)" .
	$(RUN) python labextension/source_hash.py --write
	@$(RUN) python labextension/develop.py

# Debian's Chromium for the JupyterLab browser test (Playwright never downloads a browser).
browser-deps:
	@bash .ci/browser-setup.sh

# Azurite, the Azure Storage emulator, for the storage tests (locked in tests/azurite).
azurite-deps:
	@test -x tests/azurite/node_modules/.bin/azurite-blob || \
		(cd tests/azurite && npm ci --no-audit --no-fund --loglevel=error)

test: setup browser-deps azurite-deps
	$(RUN) python -m pytest

# The default suite with a given order: `make test` already runs in a random order
# (pytest-randomly) and prints its seed; SEED=<n> repeats that order.
test-random: setup browser-deps azurite-deps
	$(RUN) python -m pytest $(if $(SEED),-p randomly --randomly-seed=$(SEED))

# The same on 2 workers (pytest-xdist, a module's tests on one worker: tests/conftest.py). On
# this 2-core machine it was not faster (1052 s vs 986 s serial): the suite is CPU-bound.
test-parallel: setup browser-deps azurite-deps
	$(RUN) python -m pytest -n 2 --dist loadgroup

# The long tests too (marked slow).
test-slow: setup browser-deps azurite-deps
	$(RUN) python -m pytest -m ''

# The same cells against a real Azure ML workspace (tests/test_azure_live.py says which
# variables); without credentials each test skips with one line.
test-azure-live: setup
	$(RUN) python -m pytest -m '' -rs tests/test_azure_live.py

bench: setup
	$(RUN) python bench/run.py

# Mutation testing of the rule modules (list: bench/mutate.sh); survivors: bench/mutation.md
mutate: setup
	bash bench/mutate.sh

LINTED := pfmagic widgets tests bench labextension/develop.py labextension/source_hash.py notebooks/run.py notebooks/make_notebooks.py notebooks/llm_standin.py

lint: setup
	$(RUN) ruff check $(LINTED)
	$(RUN) ruff format --check $(LINTED)
