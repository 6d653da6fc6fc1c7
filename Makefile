# Two commands on a fresh machine: `make demo` runs the hub, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# The demo runs on embedded defaults: SQLite and a file-system broker under var/.
DEMO_ENV := DEBUG=true DATABASE_URL= REDIS_URL=
TEST_ENV := DJANGO_SETTINGS_MODULE=config.settings_test
BENCH ?= tests/benchmarks
# Fault scenarios start their own PostgreSQL, Redis, gunicorn, worker and beat (tests/faults).
FAULTS_OPTS := -o addopts="" -p no:cacheprovider --strict-markers -m faults -rA

# Generic pullers (dlt, Airbyte's declarative CDK) are heavy: their own venv (tests/contract).
CONTRACT_VENV := .venv-contract
CONTRACT_STAMP := $(CONTRACT_VENV)/.installed-$(shell cksum tests/contract/requirements.txt | cut -d' ' -f1)

.PHONY: demo env test bench bench-peers faults faults-ci contract lint install clean \
	screenshots first-hour

# The stamp names the checksum of pyproject.toml: an install happens when its content changes
# (not its date), so a second clone linking an installed .venv does not reinstall into it.
$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The demo's environment for every `manage.py` command too; an existing .env is never touched.
.env:
	printf '%s\n' '# Written by `make demo` for local use: embedded SQLite and file-system broker.' \
		'DEBUG=true' 'DATABASE_URL=' 'REDIS_URL=' > $@
	@echo "wrote .env (DEBUG=true, embedded defaults); edit or delete it as you like"

env: .env

demo: $(STAMP) .env
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py demo_setup
	$(DEMO_ENV) $(PY) manage.py rundemo

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest $(BENCH) -s -o addopts="" -o python_files="bench_*.py test_*.py" -p no:cacheprovider $(PYTEST_ARGS)

faults: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests/faults $(FAULTS_OPTS) $(FAULTS_ARGS)

# The reduced set for CI (about nine minutes): smaller sizes, shorter outages. These are
# timed scenarios on real processes on a shared machine: a test that fails is run once more,
# and the output says so (RERUN, with the first attempt's traceback); a second failure
# fails CI.
faults-ci: $(STAMP)
	FAULTS_CI=1 $(TEST_ENV) $(PY) -m pytest tests/faults $(FAULTS_OPTS) \
		-m "faults and not faults_full" --reruns 1 --reruns-delay 5 \
		--rerun-show-tracebacks $(FAULTS_ARGS)

$(CONTRACT_STAMP):
	test -x $(CONTRACT_VENV)/bin/python || $(PYTHON) -m venv $(CONTRACT_VENV)
	$(CONTRACT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(CONTRACT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r tests/contract/requirements.txt
	rm -f $(CONTRACT_VENV)/.installed-* && touch $(CONTRACT_STAMP)

# The hub runs under the project venv's pytest; each client runs in the contract venv.
contract: $(STAMP) $(CONTRACT_STAMP)
	CONTRACT_PYTHON=$(abspath $(CONTRACT_VENV))/bin/python $(TEST_ENV) $(PY) -m pytest \
		tests/contract -o addopts="" -p no:cacheprovider --strict-markers -m contract \
		$(PYTEST_ARGS)

# The pull benchmark with the generic pullers beside the hub (dlt, Airbyte; the contract venv).
bench-peers: $(STAMP) $(CONTRACT_STAMP)
	BENCH_PEERS_PYTHON=$(abspath $(CONTRACT_VENV))/bin/python $(TEST_ENV) $(PY) -m pytest \
		tests/benchmarks/bench_pull.py -s -o addopts="" -o python_files="bench_*.py" \
		-p no:cacheprovider $(PYTEST_ARGS)

# A newcomer's first hour on a fresh clone of HEAD (.ci/first_hour.py, about 4 minutes): `make
# demo`, the admin's login, one push with the printed key reaching every sandbox platform.
first-hour: $(STAMP)
	$(PY) .ci/first_hour.py

# The README's tour (docs/tour/*.png), taken by the suite's headless Chromium; not in `make test`.
screenshots: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest tests/dexma/tour_screenshots.py -o addopts="" -p no:cacheprovider -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(CONTRACT_VENV) var staticfiles
