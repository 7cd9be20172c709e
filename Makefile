# `make demo` and `make test` create .venv on first use and reinstall only when pyproject.toml changes.
# GPU machines: make TORCH_SPEC=torch demo   (installs the default CUDA build of PyTorch instead of the CPU pin)
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
OUT ?= runs/demo
PRESET ?= tiny

.PHONY: demo test lint bench clean-runs

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# Real benchmark samples beside the checkout (XSTest, RealToxicityPrompts) are evaluated too when present.
SHARED_DATA ?= ../shared/data
EXTRA_EVALS := $(if $(wildcard $(SHARED_DATA)/xstest/xstest_prompts.csv),--xstest $(SHARED_DATA)/xstest) \
	$(if $(wildcard $(SHARED_DATA)/realtoxicityprompts/*.jsonl),--rtp $(SHARED_DATA)/realtoxicityprompts)

demo: $(STAMP)
	$(VENV)/bin/tinygpt4 run --preset $(PRESET) --out $(OUT) $(EXTRA_EVALS)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) bench/train_throughput.py
	$(PY) bench/generate.py
	$(PY) bench/sft_step.py

clean-runs:
	rm -rf runs
