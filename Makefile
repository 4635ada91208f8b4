# One venv for everything; `make test` also installs the system packages the tests compare against.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install sysdeps run test test-states test-vm bench fuzz lint ext deb clean

# The C accelerators (scripts/build_accel.py) are rebuilt whenever their source is newer.
install: $(STAMP)
	@$(BIN)/python scripts/build_accel.py

$(STAMP): pyproject.toml
	$(MAKE) --no-print-directory sysdeps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Debian's auditd (auditctl, ausearch, ausyscall) is the reference the tests compare against;
# gcc builds the benchmark's storm generator, and gcc-multilib a 32-bit test program; gcc and
# python3-dev also build thrift's C-accelerated protocol when pip installs thrift;
# thrift-compiler lets the tests check the committed Thrift bindings (scripts/gen_thrift.py);
# strace runs programs for `rules suggest`; dpkg-deb/dpkg build and test-install `make deb`.
# Installed only where missing.
sysdeps:
	@if ! command -v auditctl >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1 || \
	    ! command -v strace >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1 || \
	    ! command -v thrift >/dev/null 2>&1 || ! command -v python3-config >/dev/null 2>&1 || \
	    ! echo 'int main(void){return 0;}' | gcc -m32 -x c -o /dev/null - >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      auditd gcc gcc-multilib strace dpkg python3-dev thrift-compiler >/dev/null; \
	  else echo "sysdeps: auditd/gcc/gcc-multilib/strace/dpkg/python3-dev/thrift-compiler missing and cannot apt-get install them (need root on Debian)"; fi; \
	fi

run: install
	$(BIN)/osquery-audit-ext shell

test: install sysdeps
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The tests once per kernel audit state a host can be in: off (enabled 0, a fresh host), on
# (enabled 1) and auditd (enabled 1, auditd holding the audit pid); each is put back after.
# Needs root and an unlocked kernel. E.g. make test-states STATES=off ARGS='-x'
STATES ?= off,on,auditd
test-states: install sysdeps
	$(BIN)/python scripts/test_audit_states.py --states $(STATES) -- $(ARGS)

# The tests inside a throwaway QEMU VM (Debian kernel, audit=1) that sees this checkout over a
# read-only 9p share of / with a tmpfs overlay: for machines whose kernel audit is locked
# (enabled 2). Pytest arguments in ARGS, e.g. make test-vm ARGS='tests/test_rule_kernel.py -rs'
# VM_ACCEL: auto (KVM when it works, else TCG), kvm or tcg.
VM_ACCEL ?= auto
test-vm: install sysdeps
	$(BIN)/python scripts/vm_test.py --accel $(VM_ACCEL) -- $(ARGS)

bench: install sysdeps
	$(BIN)/python -m osquery_audit_ext.bench

# The fuzzing campaign over every parser of outside input (tests/fuzz), FUZZ_EXAMPLES
# examples per target (the normal suite runs 60). No kernel needed. E.g. make fuzz FUZZ_EXAMPLES=200000
FUZZ_EXAMPLES ?= 20000
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

# ruff, and the import-layers contract of pyproject.toml (README, "Code layout").
lint: install
	$(BIN)/ruff check osquery_audit_ext tests scripts
	$(BIN)/ruff format --check osquery_audit_ext tests scripts
	$(BIN)/lint-imports

# osquery_audit_ext.ext: one zipapp osqueryd can autoload (install it root-owned, mode 0755,
# in a directory without the sticky bit, and list it in osquery's extensions.load).
ext: install
	$(BIN)/python scripts/build_ext.py --output osquery_audit_ext.ext

# osquery-audit-ext_<version>_all.deb (dpkg-deb, offline): that .ext for /usr/bin/python3 in
# /usr/local/lib/osquery/, the commented default config as a conffile, extensions.load kept.
deb: install
	$(BIN)/python scripts/build_deb.py --output-dir .

clean:
	-@[ -x $(BIN)/python ] && $(BIN)/python scripts/build_accel.py --clean
	rm -rf $(VENV) build dist *.ext *.deb
