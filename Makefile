# Thin wrapper around CMake and the sandbox scripts. Every target that needs
# packages installs the missing ones itself (Debian 12, as root).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= 2
CTEST_ARGS ?=

# RUN_DEPS: build the gateway and the mock, and the tools the docs' examples
# use (make run, make demo). DEPS: everything, for the whole build and suite
# (redis-server for the quota tests, nginx, haproxy and python3-cryptography
# for the bench tooling's tests, prometheus for promtool, python3-jsonschema
# for the OpenAPI checks, iproute2 for the doc test's network namespace,
# python3-yaml for the deployment files' test, chromium, chromium-driver and
# python3-selenium for the operator console's browser tests, strace for the tests
# that count the system calls of a request).
RUN_DEPS   = build-essential cmake pkg-config libevent-dev libssl-dev libjansson-dev \
             libhiredis-dev libnghttp2-dev check node-llhttp openssl python3 curl ca-certificates jq
DEPS       = $(RUN_DEPS) redis-server redis-tools nginx-light prometheus python3-jsonschema iproute2 \
             debhelper dpkg-dev lintian fakeroot logrotate systemd \
             python3-yaml haproxy python3-cryptography chromium chromium-driver python3-selenium python3-h2 nghttp2-client strace
BENCH_DEPS = nginx-light haproxy wrk gnuplot-nox python3-cryptography
# make test-deploy (docs/deploy.md): rootful podman with runc and netavark,
# mmdebstrap for the base image, python3-yaml for the compose runner.
DEPLOY_DEPS = podman runc netavark iptables mmdebstrap python3-yaml
FUZZ_DEPS  = clang libclang-rt-14-dev
PERF_DEPS  = linux-perf
BUILD_FUZZ ?= build-fuzz
BUILD_BENCH ?= build-bench
FUZZ_SECONDS ?= 15
FUZZ_TARGETS ?= http1 jose policy query proxyv2 datapass h2map

.PHONY: all deps run-deps run-build build build-asan build-tsan pki run demo test test-unit fuzz-smoke format check-format clean \
        bench bench-quick bench-build package test-deploy

all: build

deps:
	@deploy/install-deps.sh $(DEPS)

run-deps:
	@deploy/install-deps.sh $(RUN_DEPS)

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DGW_SANITIZE=ON -DGW_WERROR=ON >/dev/null
	cmake --build $(BUILD_ASAN) -j$(JOBS)

# ThreadSanitizer build (not combinable with ASan): the unit and integration
# suites again, every data race an error (tests/tsan.supp lists the
# third-party false positives, each justified).
build-tsan: deps
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DGW_TSAN=ON -DGW_WERROR=ON >/dev/null
	cmake --build $(BUILD_TSAN) -j$(JOBS)

pki: run-deps
	deploy/sandbox/pki.sh

# make run and make demo build only the gateway and the mock.
run-build: run-deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS) --target opale-gateway opale-mock

run: run-build pki
	deploy/sandbox/run.sh $(BUILD)

demo: run-build pki
	deploy/sandbox/demo.sh $(BUILD)

# The whole suite (ctest -j$(JOBS): every test picks its own free ports and
# temporary directory): unit + integration on the release build, then the same
# suite on the ASan+UBSan build and on the TSan build, then make demo (every
# step must get the answer it announces; its output is kept in
# $(BUILD)/demo.log), then a short libFuzzer smoke.
test: build build-asan build-tsan pki
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure $(CTEST_ARGS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j$(JOBS) --output-on-failure $(CTEST_ARGS)
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest -j$(JOBS) --output-on-failure $(CTEST_ARGS)
	@if deploy/sandbox/demo.sh $(BUILD) >$(BUILD)/demo.log 2>&1; then tail -n 2 $(BUILD)/demo.log; \
	  else cat $(BUILD)/demo.log; echo "make test: make demo failed" >&2; exit 1; fi
	$(MAKE) --no-print-directory fuzz-smoke

# libFuzzer smoke: each target for FUZZ_SECONDS on the committed corpus
# (tests/fuzz/corpus/<name>) plus what earlier runs found (build-fuzz/corpus).
fuzz-smoke: deps
	@deploy/install-deps.sh $(FUZZ_DEPS)
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DGW_FUZZ=ON >/dev/null
	cmake --build $(BUILD_FUZZ) -j$(JOBS) $(foreach t,$(FUZZ_TARGETS),--target fuzz_$(t))
	@rc=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD_FUZZ)/corpus/$$t; r=0; \
	  $(BUILD_FUZZ)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(BUILD_FUZZ)/corpus/$$t tests/fuzz/corpus/$$t >$(BUILD_FUZZ)/fuzz_$$t.log 2>&1 || r=$$?; \
	  grep -E '^(Done|stat::)|ERROR|SUMMARY' $(BUILD_FUZZ)/fuzz_$$t.log; \
	  if [ $$r -ne 0 ]; then tail -n 60 $(BUILD_FUZZ)/fuzz_$$t.log; rc=$$r; fi; \
	  echo "fuzz_$$t: exit $$r"; \
	done; exit $$rc

# The side-by-side bench against nginx and HAProxy (bench/bench.py;
# docs/loadgen.md): Release build of the gateway, the mock and the load
# generator, proxies on CPU 0, load on CPU 1 (S2W and S8: the whole
# machine); writes bench/results/<date>-<host>[-quick].md, its plots and raw
# data. bench: ~25-35 min (5 rounds, 10 s runs, S8 with 10,000 partners,
# perf profile); bench-quick: < 8 min, every scenario reduced.
bench-build:
	@deploy/install-deps.sh $(DEPS) $(BENCH_DEPS)
	cmake -S . -B $(BUILD_BENCH) -DCMAKE_BUILD_TYPE=Release -DGW_WERROR=ON >/dev/null
	cmake --build $(BUILD_BENCH) -j$(JOBS) --target opale-gateway opale-mock opale-loadgen opale-wakeprobe opale-backend

bench: bench-build
	@deploy/install-deps.sh $(PERF_DEPS)
	python3 bench/bench.py --build $(BUILD_BENCH) --profile

bench-quick: bench-build
	python3 bench/bench.py --build $(BUILD_BENCH) --quick

# The Debian package (debhelper, deploy/debian/; ~1 min): $(BUILD)/package/
# opale-gateway_VERSION_ARCH.deb, lintian-checked (an error fails the target).
package:
	deploy/debian/build.sh $(BUILD)/package

# The container image and the compose stack, built and run for real with
# podman (not part of make test: root, the Debian archive for the image
# builds; about 2 min cold, 20 s with the images built; docs/deploy.md).
test-deploy:
	@deploy/install-deps.sh $(DEPLOY_DEPS)
	python3 tests/deploy/test_deploy.py

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

check-format:
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
