# The daily loop. `make setup` once, then `make test`.
UV ?= uv

.PHONY: setup fmt lint types test bench up demo

setup:
	./scripts/install.sh

fmt:
	$(UV) run ruff format libs services tests bench
	$(UV) run ruff check --fix libs services tests bench

lint:
	$(UV) run ruff format --check libs services tests bench
	$(UV) run ruff check libs services tests bench

types:
	$(UV) run mypy libs/*/src services/*/src

test:
	./scripts/test.sh

bench:
	./scripts/bench.sh

up:
	$(UV) run proxbus up

demo:
	$(UV) run proxbus up --demo
