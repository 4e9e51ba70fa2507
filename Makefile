# posdiag — set-up, demo and tests. Two commands matter (see README.md):
#   make demo   create the environment and run the self-test on this machine
#   make test   install what the tests need (Debian packages, Python env) and run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests use for real: a broker, udev device mocks, firewall rules for
# black-holed hosts, network namespaces, certificates, dpkg's version oracle, unit verification
# (systemd-analyze; procps for the unit's /bin/kill; libseccomp for the sandbox test), and
# umockdev's GObject bindings with Debian's python for real uevents in the hotplug tests; the
# kernel's input-event-codes.h as the oracle for the HID key numbers (linux-libc-dev);
# pcscd with the vsmartcard-vpcd virtual reader for the chip reader tests and the demo
# (libpcsclite-dev and swig build pyscard; pcsc-tools gives the technician pcsc_scan).
TEST_DEBS := mosquitto umockdev gir1.2-umockdev-1.0 python3-gi nftables iproute2 openssl dpkg \
             systemd procps libseccomp2 python3-venv \
             pcscd libpcsclite-dev swig vsmartcard-vpcd pcsc-tools linux-libc-dev
.PHONY: demo test env debs lint pytest bench clean install node asyncapi

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

env: $(VENV)/.installed

debs:
	@missing=$$(for p in $(TEST_DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: debs env
	$(VENV)/bin/posdiag selftest; echo "posdiag selftest on this machine: exit code $$?"
	$(PY) hardware-fixtures/demo.py

lint: env
	$(VENV)/bin/ruff check agent drivers tests hardware-fixtures bench tools

# The stock Node tools the contract tests run (tests/contract/): pinned by package-lock.json.
NODE_DIR := tests/contract/node
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_DIR)/node_modules/.installed

# docs/asyncapi.yaml from tools/asyncapi.template.yaml and agent/schema/*.json.
asyncapi: env
	$(PY) tools/asyncapi.py

pytest: env node
	$(VENV)/bin/pytest -q

test: debs env node lint pytest

# Each bench prints its table and exits 1 on a missed target; all of them run regardless.
bench: debs env
	@dpkg-query -W prometheus-node-exporter >/dev/null 2>&1 || \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
	-$(PY) bench/selftest.py
	-$(PY) bench/devices.py
	-$(PY) bench/pcsc.py
	-$(PY) bench/outbox.py
	-$(PY) bench/recorder.py
	-$(PY) bench/faults.py
	-$(PY) bench/diagnosis_accuracy.py
	-$(PY) bench/bandwidth.py
	-$(PY) bench/footprint.py

# The terminal install: a virtualenv in /opt/posdiag from Debian's python3, the unit, sysusers,
# tmpfiles, udev rules and /etc/posdiag (systemd/README.md). DESTDIR=dir stages it elsewhere.
install:
	DESTDIR="$(DESTDIR)" PREFIX="$(or $(PREFIX),/opt/posdiag)" bash systemd/install.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
