# anerd: convenience targets. `make test` installs dependencies, builds everything and runs every test.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test soak demo clean format fuzz bench

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The fuzz smoke run (one line per target) goes first so that make test ends with the test summary
# and the skipped tests' reasons; a fuzz failure still lets the tests run, then fails the target.
test: build
	@fuzz=0; if [ -x scripts/run-fuzz.sh ]; then scripts/run-fuzz.sh 5 || fuzz=$$?; fi; \
	  status=0; ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600 -LE soak \
	  || status=$$?; scripts/print-skips.sh $(BUILD); \
	  if [ $$fuzz -ne 0 ]; then echo "the fuzz smoke run failed (exit $$fuzz): see above"; fi; \
	  if [ $$status -ne 0 ]; then exit $$status; fi; exit $$fuzz

# Long runs: repeated kill -9 during training, many concurrent clients (see tests/soak/).
# ANERD_SOAK_KILLS, ANERD_SOAK_CLIENTS and ANERD_SOAK_SECONDS override the defaults (10, 64, 60).
soak: build
	@ctest --test-dir $(BUILD) --output-on-failure --timeout 1800 -L soak -V > $(BUILD)/soak.log 2>&1; \
	  status=$$?; grep -E '\[soak\]|tests passed|tests failed' $(BUILD)/soak.log; \
	  echo "full log: $(BUILD)/soak.log"; exit $$status

# The demo needs only the daemon and the CLI: build those two targets, not the tests.
demo: configure
	@cmake --build $(BUILD) -j $(JOBS) --target anerd anectl
	@scripts/demo.sh $(BUILD)

fuzz: deps
	@scripts/run-fuzz.sh $${FUZZ_SECONDS:-600}

bench: deps
	@cmake -S . -B $(BUILD)-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DANERD_BUILD_BENCH=ON -DANERD_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(BUILD)-bench -j $(JOBS)
	@echo "benchmarks built in $(BUILD)-bench/bench; see bench/README.md"

format:
	@git ls-files '*.h' '*.cc' '*.mm' | xargs clang-format -i

clean:
	@rm -rf $(BUILD) $(BUILD)-bench build-fuzz
