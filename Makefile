# Two commands do all set-up on a fresh machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/dev
PORT ?= 7860

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, exactly pinned (pip takes them from this machine's disk)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/radassist demo --port $(PORT) --library $(DATA)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	RADASSIST_DATA=$(DATA) $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/ingest.py --data $(DATA)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
