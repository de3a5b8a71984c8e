# Vision Lab. `make run` installs what it needs (first time: a few minutes) and starts the app;
# `make test` installs the test tools too (Debian's chromium) and runs the whole suite.
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: run test bench install

install:
	scripts/install.sh

run: install
	.venv/bin/python scripts/serve.py --server.port $(PORT)

test:
	scripts/install.sh --test
	scripts/loopback_netns.sh .venv/bin/python -m pytest $(PYTEST_ARGS)

bench: install
	.venv/bin/python bench/pipeline.py
