# The two commands (README.md): `make demo` runs the kiosk with simulated devices, `make test` runs the tests.
# Both set up a fresh machine first (scripts/setup.sh is idempotent).
.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/python scripts/demo.py $(ARGS)

test: setup
	@bash scripts/test.sh $(ARGS)

bench: setup
	@for b in bench/[!_]*.py; do .venv/bin/python $$b || exit 1; done
