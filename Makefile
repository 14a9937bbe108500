VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test test-all unit integration lint demo clean

setup:
	@bash scripts/setup

test: setup
	$(BIN)/ruff check records harness analysis stack tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q --durations=25

# Everything, the slow tier too (every shipped scenario against a healthy stack, the chaos
# cases the default suite leaves out).
test-all: setup
	$(BIN)/ruff check records harness analysis stack tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q --durations=25 -m "slow or not slow"

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration tests/e2e

lint: setup
	$(BIN)/ruff check records harness analysis stack tests bench
	$(BIN)/mypy

demo: setup
	@bash scripts/demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
