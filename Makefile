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

LIBRARY ?= $(or $(RADASSIST_LIBRARY),$(HOME)/.cache/radassist/cases.sqlite)

demo: $(STAMP)
	@# the similar-case library is built once from the data's train split, if the data is here
	@if [ -d "$(DATA)/medpix" ] && [ ! -f "$(LIBRARY)" ]; then \
		$(VENV)/bin/radassist cases build --data $(DATA) --db $(LIBRARY); fi
	RADASSIST_LIBRARY=$(LIBRARY) $(VENV)/bin/radassist demo --port $(PORT) --library $(DATA)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	RADASSIST_DATA=$(DATA) $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/ingest.py --data $(DATA)
	$(PY) bench/model.py
	$(PY) bench/notes.py --data $(DATA)
	$(PY) bench/bridge.py
	$(PY) bench/demo_latency.py --data $(DATA)
	$(PY) bench/backbones.py --data $(DATA)
	$(PY) bench/batch.py --data $(DATA)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
