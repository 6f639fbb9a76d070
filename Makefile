# Two commands: `make demo` and `make test`. Both set everything up on a fresh
# machine that has Python >= 3.11 and make.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_SCENARIO ?= scenarios/order-flaky-payment.toml

.PHONY: demo test lint format bench report notebooks browser clean help

help:
	@echo "make demo   - set up .venv and run $(DEMO_SCENARIO), printing its table"
	@echo "make test   - set up .venv with the dev tools (and Chromium: make browser), run ruff and the whole test suite"
	@echo "make browser - install Debian's chromium and chromium-driver for the report's browser test, if missing"
	@echo "make bench  - run the throughput benchmark (figures go into docs/performance.md)"
	@echo "make report - regenerate the example report in reports/example"
	@echo "make notebooks - install Jupyter and open the notebooks in notebooks/"
	@echo "make lint   - ruff check and format check"
	@echo "make clean  - remove .venv, results/ and caches"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sagasim needs Python >= 3.11; found " + sys.version.split()[0] + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# Reinstall when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/sagasim run $(DEMO_SCENARIO)

test: $(VENV)/.installed-dev browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/throughput.py

# The example report kept in git: a small sweep of three protocols, so every
# section of a report shows; the same inputs give the same files.
report: $(VENV)/.installed
	rm -rf results/example-sweep
	$(VENV)/bin/sagasim sweep sweeps/payment-failure.toml --seeds 1..2 --set run.duration=20 --set run.drain=10 \
		--out results/example-sweep --quiet
	$(VENV)/bin/sagasim report results/example-sweep --out reports/example --overwrite --quiet

notebooks: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e ".[dev,notebooks]"
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache .hypothesis tests/artifacts

# The report's browser test (tests/test_browser.py) drives Debian's headless
# Chromium through chromedriver; installed here when missing (as root, or with sudo).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing chromium and chromium-driver for the browser test"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi
