# The two set-up commands of a fresh clone: `make demo` and `make test`.
# Both create .venv from the pinned requirements when it is missing (or when
# the requirements changed) and reuse it when present.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements.lock setup.py pyproject.toml featnet_tf/__init__.py pipelines/__init__.py serving/__init__.py tfbase/__init__.py demo/__init__.py
	@test -x $(BIN)/python || { command -v $(PYTHON) >/dev/null && $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

# Two workers, one module each at a time (--dist loadfile keeps a module's
# fixtures in one process): the suite takes 0.6x the time of one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) demo_output *.egg-info
