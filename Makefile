# p2p — build, check, test, demo and bench targets.
# Deno comes from PATH when it is 2.9 or newer, otherwise from the npm registry
# (the `deno` package ships the real binary) into the ignored folder .tools/.

DENO_VERSION := 2.9.6
TOOLS := .tools
SYSTEM_DENO := $(shell command -v deno 2>/dev/null)
SYSTEM_DENO_OK := $(shell [ -n "$(SYSTEM_DENO)" ] && "$(SYSTEM_DENO)" --version 2>/dev/null | awk 'NR==1 { split($$2, v, "."); exit !(v[1] > 2 || (v[1] == 2 && v[2] >= 9)) }' && echo yes)
ifeq ($(SYSTEM_DENO_OK),yes)
DENO := $(SYSTEM_DENO)
else
DENO := $(TOOLS)/node_modules/deno/deno
endif

# What the compiled binary may do: network (peers, tracker), files (data dirs,
# logs), env (data-dir defaults), sys (hostname, interfaces), run (arp, for discovery).
PERMS := --allow-net --allow-read --allow-write --allow-env --allow-sys --allow-run
TEST_FLAGS := -A --parallel
# Assets (loaded by URL, so deno compile does not find them alone).
INCLUDES := $(foreach d,$(wildcard peer/app/static),--include $(d))
export DENO_NO_UPDATE_CHECK := 1

.PHONY: all deno check fmt test demo build bench clean

all: check test

deno: $(DENO)

$(TOOLS)/node_modules/deno/deno:
	@command -v npm >/dev/null || { echo "make: need npm to install Deno $(DENO_VERSION) (or put deno >= 2.9 on PATH)"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) deno@$(DENO_VERSION)
	@test -x $@ || { echo "make: npm did not install the deno binary at $@"; exit 1; }
	@$@ --version | head -1

# Sources whose JSDoc examples `deno test --doc` runs: everything but tests and benchmarks.
DOC_SOURCES = $(shell find main.ts cli lib peer proto tracker -name '*.ts' ! -name '*_test.ts' 2>/dev/null | sort)

check: $(DENO)
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check .
	$(DENO) check --config peer/app/static/deno.json peer/app/static/app.js
	$(DENO) test --doc -A --quiet $(DOC_SOURCES)

fmt: $(DENO)
	$(DENO) fmt

# The whole suite; the last line is `N passed, N failed[, N skipped]`.
test: $(DENO)
	@DENO="$(DENO)" bash tests/run.sh $(TEST_FLAGS)

demo: $(DENO)
	$(DENO) run $(PERMS) main.ts demo

# deno compile needs a base runtime (denort) from Deno's release server; where that
# cannot be reached, point DENORT_BIN at a local denort binary of the same version.
build: $(DENO)
	@mkdir -p dist
	@set -e; \
	if [ -n "$$DENORT_BIN" ] && [ ! -x "$$DENORT_BIN" ]; then \
	  echo "make build: DENORT_BIN='$$DENORT_BIN' is not an executable file"; exit 1; fi; \
	if ! $(DENO) compile $(PERMS) $(INCLUDES) --output dist/p2p main.ts 2>dist/compile.log; then \
	  tail -5 dist/compile.log >&2; \
	  echo "make build: deno compile could not get its base runtime (denort $(DENO_VERSION)); set DENORT_BIN=/path/to/denort (same version) and run again" >&2; \
	  exit 1; fi; \
	echo "built dist/p2p"; ls -l dist/p2p

# Installs missing reference tools (aria2, opentracker, nginx, wrk, mktorrent, curl)
# from Debian when root, then runs every benchmark; e.g. BENCH_ARGS="--runs 1 -d 4".
bench: $(DENO)
	@sh bench/install-tools.sh
	$(DENO) run -A bench/run.ts $(BENCH_ARGS)

clean:
	rm -rf dist .test-artifacts
