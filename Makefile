# Two commands do everything on a fresh machine: `make report` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
STAMP := $(VENV)/.installed-stamp

.PHONY: setup report test unit notebooks lint format clean-reports

setup: $(STAMP)

# Rebuilt only when pyproject.toml changes; torch 2.14.1 / torchvision 0.29.1 come from local disk.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pixel_utils.html_export || echo "warning: no npm; executed notebooks will not be exported to offline HTML"
	touch $(STAMP)

report: setup
	$(PY) -m pixel_utils.report --profile $(PROFILE)
	@if [ "$(PROFILE)" = default ]; then $(PY) -m pixel_utils.readme; fi

test: lint unit notebooks

unit: setup
	PIXEL_PROFILE=smoke $(PY) -m pytest tests

notebooks: setup
	PIXEL_PROFILE=smoke $(PY) -m pytest --nbval-lax -p no:cacheprovider notebooks

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
