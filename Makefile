# The README's commands. `make run` starts a local cluster mounted at ./mnt; `make test` runs
# every test in the sanitizer build.
JOBS ?= $(shell nproc)
# cmake --build runs make again: no "Entering directory" lines from it.
MAKEFLAGS += --no-print-directory
RELEASE := build/release
ASAN := build/asan

.PHONY: all deps build build-asan test run stop status bench format clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DDFS_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)

# The release build is built too, so that `make run` cannot break unnoticed (optimized builds
# warn about things debug builds do not).
test: build build-asan
	@cd $(ASAN) && ctest --output-on-failure -j $(JOBS)

run: build
	@./scripts/run.sh

stop:
	@./scripts/run.sh stop

status:
	@./scripts/run.sh status

bench: build
	@./tests/bench/run.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
