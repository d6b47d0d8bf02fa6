# seedtok: two commands do everything on a fresh machine.
#   make test   create .venv, install, run the test suite
#   make demo   create .venv, install, run the main job and write its report
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0

.PHONY: test demo install clean

$(VPY):
	$(PY) -m venv $(VENV)

$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q $(TORCH)
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/seedtok demo --out demo

clean:
	rm -rf $(VENV) demo build src/*.egg-info
