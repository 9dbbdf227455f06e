# The course's commands. A newcomer needs two: `make start` (students) and `make test` (everything).
# Both create the local virtual environment .venv/ from the pinned requirements the first time.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8888
# JupyterLab refuses to run as root unless told to (containers, CI machines).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
# The browser test drives the distribution's Chromium (never a browser downloaded by Playwright).
CHROMIUM ?= /usr/bin/chromium

.PHONY: start test test-fast build grade setup setup-dev browser sandbox postgres

# JUPYTER_CONFIG_PATH adds jupyter-student/: the student's JupyterLab, without nbgrader's instructor tools
# (formgrader, Create Assignment, course list); Validate and the assignment list stay. Binder's `start` does the same.
start: setup  ## Start JupyterLab on the course's start page
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter-student$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	exec $(BIN)/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks/start.ipynb \
		--ServerApp.port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

test: setup-dev browser sandbox postgres  ## Run the whole test suite (grading, generated folders, solutions with nbval, browser)
	$(BIN)/python -m pytest tests --nbval solutions --nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

test-fast: setup-dev  ## The unit layer only: no kernel, nbgrader run or browser (the tests marked slow are skipped)
	$(BIN)/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

build: setup-dev  ## Rebuild release/ and solutions/ from source/ (never edit those two by hand)
	$(BIN)/python -m coursekit build

setup: $(VENV)/.student-installed
setup-dev: $(VENV)/.dev-installed

$(VENV)/.student-installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.student-installed requirements-dev.txt pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Debian's chromium, installed with apt-get when it is missing and we may (root: containers and CI).
# Otherwise tests/test_browser.py says how to install it.
browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser test (apt-get, about 20 s)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Grading runs every student's kernel in a bubblewrap sandbox (coursekit/sandbox.py): Debian's bubblewrap, installed
# with apt-get when it is missing and we may (root). Otherwise grading says how to install it.
sandbox:
	@if ! command -v bwrap >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's bubblewrap for the grading sandbox (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	fi

# Debian's PostgreSQL server binaries (initdb, pg_ctl), installed with apt-get when missing and we may (root: CI,
# containers), for the PostgreSQL gradebook tests. Debian would create and start a "main" cluster on port 5432:
# createcluster.conf stops that, so nothing keeps running after the tests; they start their own throwaway server
# (coursekit/throwaway.py). Otherwise tests/test_cluster_grading.py says how to install it.
postgres:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		&& [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's postgresql for the gradebook tests (apt-get)"; \
		mkdir -p /etc/postgresql-common; \
		[ -e /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
