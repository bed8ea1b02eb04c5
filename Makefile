# Two commands do all set-up on a fresh machine (Python 3.11, Java 17):
#   make demo [DS=YYYY-MM-DD] [DAYS=N]   install, then run movielens_daily end to end on the embedded default
#                               (DAYS > 1: the release replayed as a daily feed, N dates ending at DS)
#   make test                   install, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
DS ?= $(shell date +%F)
DAYS ?= 1
STAMP := $(VENV)/.installed
# Azurite (Azure Storage emulator, npm) for the tests of the abfs:// lake, exactly as locked.
AZURITE_DIR := tools/azurite
AZURITE := $(AZURITE_DIR)/node_modules/.installed
# Debian packages of the tests: PostgreSQL (metadata DB and serving tables), Compose v1 (reads docker-compose.yaml
# as Compose does; no Docker engine needed) and Chromium (the web UI test;
# Playwright drives it, since browser downloads are impossible here).
SYSTEM_PACKAGES := postgresql chromium docker-compose
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The tests in two processes, a module each at a time, in file order: the Airflow stack's module (the longest)
# starts at once in one while the other takes the rest (docs/testing.md). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: install system-packages demo test ui lock clean

$(STAMP): requirements-dev.lock
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	@command -v java >/dev/null || { echo "needs Java 17 (java on PATH) for Spark"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	# Compiled bytecode: without it GX and airflow.sdk import 2-3 times slower.
	# The runtime set and the dev group (tests, local tooling, docs); the Docker image has requirements.lock only.
	$(VENV)/bin/uv pip sync --quiet --python $(PY) --compile-bytecode requirements-dev.lock
	# Our package (plugins/), and the Spark jobs and the dev tooling devenv/ (repo root) on the environment's path.
	printf '%s\n%s\n' "$(CURDIR)/plugins" "$(CURDIR)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/movielens_platform.pth
	touch $(STAMP)

$(AZURITE): $(AZURITE_DIR)/package.json $(AZURITE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "needs Node.js 20+ and npm (Azurite, the Azure Storage emulator of the tests)"; exit 1; }
	npm ci --prefix $(AZURITE_DIR) --no-audit --no-fund --loglevel=error
	touch $(AZURITE)

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

install: $(STAMP) $(AZURITE) system-packages

demo: $(STAMP)
	$(PY) -m devenv demo --ds $(DS) --days $(DAYS)

test: $(STAMP) $(AZURITE) system-packages
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

ui: $(STAMP)
	$(PY) -m devenv ui --port 8080

# Runtime first (pyproject's dependencies: the image's set), then runtime + the dev group on exactly those versions.
# Each keeps the versions already in its file unless pyproject.toml asks otherwise.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile --quiet pyproject.toml -o requirements.lock --universal --python-version 3.11
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --group dev -c requirements.lock -o requirements-dev.lock --universal --python-version 3.11

clean:
	rm -rf var
