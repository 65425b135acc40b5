# The verbs people type. CMake does the work underneath, in $(BUILD).
BUILD    ?= build
ASAN     ?= build-asan
VG       ?= build-valgrind
PORTABLE ?= build-portable
LAYERS   ?= build-layers
WINDOWS  ?= build-windows
PREFIX   ?= /usr/local
DESTDIR  ?=
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE    ?= cmake
CTEST    ?= ctest
ASAN_CC  ?= clang

.PHONY: all run test test-faults test-asan test-valgrind test-portable layers bench bench-designs bench-peers bench-steer \
	install clean windows test-windows

all: $(BUILD)/Makefile
	$(CMAKE) --build $(BUILD) -j $(JOBS)

$(BUILD)/Makefile:
	$(CMAKE) -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

# The main job: the pre-forked server on 127.0.0.1:8080, one worker per CPU, the built-in HTTP
# handler, logging to stderr. Ctrl-C drains and stops it. ARGS adds options (ARGS="--workers 4").
run: all
	./$(BUILD)/fdpass serve $(ARGS)

test: all
	$(CTEST) --test-dir $(BUILD) --output-on-failure -j $(JOBS)

# The fault suite: fdpass serve under load while workers are killed, reloaded, hung, the
# server stopped, soaked with 200,000 connections, run at ulimit -n 64, upgraded ten times in a
# row; each case measured against its target (docs/RELIABILITY.md). About 2 minutes on 2
# cores. FAULTS="kill9 hung" runs some.
test-faults: all
	tests/faults/run.sh -b $(BUILD) $(FAULTS)

# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan:
	$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=$(ASAN_CC) -DFDPASS_SANITIZE=ON -DFDPASS_WERROR=ON
	$(CMAKE) --build $(ASAN) -j $(JOBS)
	$(CTEST) --test-dir $(ASAN) --output-on-failure -j $(JOBS)

# The mechanism alone with its Linux-only paths switched off (FDPASS_PORTABLE): the fallbacks
# for other POSIX systems compile, and the mechanism's tests pass on them.
test-portable:
	$(CMAKE) -S . -B $(PORTABLE) -DFDPASS_PORTABLE=ON -DFDPASS_WERROR=ON
	$(CMAKE) --build $(PORTABLE) -j $(JOBS)
	$(CTEST) --test-dir $(PORTABLE) --output-on-failure -j $(JOBS)

# Each layer built alone from a clean tree, bottom up (docs/ARCHITECTURE.md): a layer that
# needed one above it would fail here.
LAYER_TARGETS = fdp_mech fdpass fdp_proto fdp_worker fdp_route fdp_steer fdp_master fdpass_runtime fdpass_tool
layers:
	rm -rf $(LAYERS)
	$(CMAKE) -S . -B $(LAYERS) -DFDPASS_WERROR=ON -DFDPASS_TESTS=OFF -DFDPASS_BENCH=OFF >/dev/null
	for t in $(LAYER_TARGETS); do \
		echo "== layer $$t"; $(CMAKE) --build $(LAYERS) -j $(JOBS) --target $$t || exit 1; \
	done

# The whole suite under valgrind (VG_TESTS='serve|worker' runs the tests matching a regex): any memory error or definite leak fails the test (the harness
# itself checks that every test leaves the descriptor table as it found it).
VALGRIND_FLAGS = --quiet --error-exitcode=99 --track-fds=yes --leak-check=full \
		 --errors-for-leak-kinds=definite
test-valgrind:
	$(CMAKE) -S . -B $(VG) -DCMAKE_BUILD_TYPE=Debug -DFDPASS_TEST_TIMEOUT=300 \
		-DFDPASS_TEST_WRAPPER="valgrind;$(shell echo $(VALGRIND_FLAGS) | tr ' ' ';')"
	$(CMAKE) --build $(VG) -j $(JOBS)
	$(CTEST) --test-dir $(VG) --output-on-failure -j $(JOBS) $(if $(VG_TESTS),-R '$(VG_TESTS)')

# Every benchmark, each comparing fdpass with its baseline side by side in one run.
bench: all
	./$(BUILD)/bench/bench_msg
	./$(BUILD)/bench/bench_channel

# The nine classic server designs (plus SO_REUSEPORT) under one load: docs/benchmarks/designs.md.
bench-designs: all
	bench/designs/run.sh -b $(BUILD)

# The same HTTP load against nginx, Node.js cluster, a bare SO_REUSEPORT server and fdpass serve
# (installs missing peers from Debian packages when it can): docs/benchmarks/peers.md.
bench-peers: all
	bench/peers/run.sh -b $(BUILD)

# Kernel steering's foundation (docs/STEERING.md): two workers accepting on their own slot
# sockets with the steering program, against bare SO_REUSEPORT and the passing floor. Root.
# STEER_ARGS adds options (-n connections, -t client threads, -w workers, -r rounds).
bench-steer: all
	./$(BUILD)/bench/steer/steer-bench $(STEER_ARGS)

# Everything under $(DESTDIR)$(PREFIX), whatever prefix $(BUILD) was configured with: the program,
# headers, shared (soname and links) and static libraries, pkg-config files naming $(PREFIX),
# manual pages (share/man) and docs (share/doc/fdpass). tests/install_test.sh checks it.
install: all
	@case '$(PREFIX)' in /*) ;; *) echo 'make install: PREFIX must be an absolute path, not "$(PREFIX)"' >&2; exit 2;; esac
	DESTDIR='$(DESTDIR)' $(CMAKE) --install $(BUILD) --prefix '$(PREFIX)'

# Windows: fdpass.exe and its tests cross-compiled with mingw-w64 into $(WINDOWS), and run
# under Wine in a throwaway prefix (docs/WINDOWS.md). tests/win/install-tools.sh installs both.
windows:
	$(CMAKE) -S . -B $(WINDOWS) -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake -DFDPASS_WERROR=ON
	$(CMAKE) --build $(WINDOWS) -j $(JOBS)

test-windows: windows
	FDPASS_REQUIRE_WINE=$(FDPASS_REQUIRE_WINE) tests/win/run.sh $(WINDOWS)

clean:
	rm -rf $(BUILD) $(ASAN) $(VG) $(PORTABLE) $(LAYERS) $(WINDOWS) build-fuzz

# The libFuzzer targets (clang), each for FUZZ_SECONDS (default 60): the channel receive parser
# (seeds in fuzz/corpus), content routing's parsers (seeds in fuzz/corpus_route_key) and the
# runtime protocol's codec (seeds in fuzz/corpus_proto). New inputs go to $(FUZZ)/corpus*; a
# crash leaves crash-* in the current directory and fails the target; turn it into a regression
# test in tests/.
FUZZ         ?= build-fuzz
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	$(CMAKE) -S . -B $(FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DFDPASS_FUZZ=ON \
		-DFDPASS_TESTS=OFF -DFDPASS_BENCH=OFF
	$(CMAKE) --build $(FUZZ) -j $(JOBS) --target fuzz_channel_recv fuzz_route_key fuzz_proto
	mkdir -p $(FUZZ)/corpus $(FUZZ)/corpus_route_key $(FUZZ)/corpus_proto
	./$(FUZZ)/fuzz/fuzz_channel_recv -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-print_final_stats=1 $(FUZZ)/corpus fuzz/corpus
	./$(FUZZ)/fuzz/fuzz_route_key -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-print_final_stats=1 $(FUZZ)/corpus_route_key fuzz/corpus_route_key
	./$(FUZZ)/fuzz/fuzz_proto -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
		-print_final_stats=1 $(FUZZ)/corpus_proto fuzz/corpus_proto
