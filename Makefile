# The README's commands. Each target does its own set-up (scripts/setup.sh is idempotent).
.PHONY: setup demo test lint bench clean

setup:
	scripts/setup.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

lint: setup
	. ./setup.env && ruff check . && python scripts/check_headers.py

bench: setup
	. ./setup.env && python benchmarks/run_all.py

clean:
	rm -rf build install log test-output
