# One-command set-up on a fresh machine: `make demo` and `make test` create the
# virtual environment on first use (torch/torchvision pinned first, see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
DEMO_OUT ?= demo_out

.PHONY: setup demo test clean-venv

setup: $(VENV)/.mitoscale-installed

$(VENV)/.mitoscale-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[test,nellie]"
	touch $@

demo: setup
	$(BIN)/mitoscale run --config configs/demo.yaml --out $(DEMO_OUT)

test: setup
	bash deploy/ci/prepare_test_services.sh
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
