# Vision Lab. `make run` installs what it needs (first time: a few minutes) and starts the app;
# `make test` installs the test tools too (Debian's chromium) and runs the whole suite.
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: run test bench install postgres postgres-stop screenshots

install:
	scripts/install.sh

run: install
	.venv/bin/python scripts/serve.py --server.port $(PORT)

test:
	scripts/install.sh --test
	scripts/loopback_netns.sh .venv/bin/python -m pytest $(PYTEST_ARGS)

# docs/*.png, as the newcomer's walk of the browser test sees each page
screenshots:
	scripts/install.sh --test
	VISION_LAB_SCREENSHOTS=docs scripts/loopback_netns.sh .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_browser.py -k newcomer

bench: install
	.venv/bin/python bench/pipeline.py

# A private PostgreSQL + pgvector (pgserver) for the shared gallery; prints the URL to give every app server:
#   VISION_LAB_GALLERY=$$(make -s postgres) make run
postgres:
	scripts/install.sh --postgres
	.venv/bin/python scripts/postgres.py start

postgres-stop:
	.venv/bin/python scripts/postgres.py stop
