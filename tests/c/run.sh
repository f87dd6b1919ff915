#!/usr/bin/env bash
# The C API test suite: builds libswarmcast (cargo build -p swarmcast-c), compiles the
# C tests and examples with -Wall -Wextra -Werror, runs them under AddressSanitizer
# with leak detection, and drives the end-to-end ones with the official
# socket.io-client (tests/js/node_modules). Every wait is bounded.
#
# Counts each "ok - ..." / "not ok - ..." line the programs print, plus one result per
# build step and per sanitizer verdict; the last line is "N passed, M failed". Exits
# non-zero on any failure. Artefacts and logs: target/c-tests/.
#
# Env: C_TEST_THREADS / C_TEST_PER_THREAD size the concurrent-emit test (default 4 x 500);
# CARGO_TARGET_DIR, if set, is where the library is built and taken from. The cluster
# tests start their own redis-server (scripts/install-test-deps.sh installs it) on a
# free loopback port and stop it.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/c-tests"
LOGS="$OUT/logs"
rm -rf "$LOGS"
mkdir -p "$OUT" "$LOGS"

CC="${CC:-cc}"
CXX="${CXX:-c++}"
WARN=(-Wall -Wextra -Werror)
ASAN=(-fsanitize=address -fno-omit-frame-pointer -g)
SYSLIBS=(-lpthread -ldl -lm -lrt -lutil)
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LIB="$TARGET_DIR/debug/libswarmcast.a"
THREADS="${C_TEST_THREADS:-4}"
PER_THREAD="${C_TEST_PER_THREAD:-500}"
# Leaks fail with exit code 23; other ASan errors with 1 (the programs use 1 for
# failed checks too, the log tells them apart).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="exitcode=23"

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok - %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'not ok - %s\n' "$*"; }

# step NAME CMD...: one result for a command (output in logs/NAME.log).
step() {
    local name="$1" log
    shift
    log="$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
    if "$@" >"$LOGS/$log" 2>&1; then
        pass "$name"
        return 0
    fi
    fail "$name (see target/c-tests/logs/$log)"
    sed 's/^/    /' "$LOGS/$log" | tail -30
    return 1
}

# count_checks LOG: add the program's own ok / not ok lines to the totals, echo them.
count_checks() {
    local log="$1" ok bad
    ok="$(grep -c '^ok - ' "$log" || true)"
    bad="$(grep -c '^not ok - ' "$log" || true)"
    passed=$((passed + ok))
    failed=$((failed + bad))
    grep -E '^(not ok - |# )' "$log" || true
    printf '  (%s: %s checks passed, %s failed)\n' "$(basename "$log" .out)" "$ok" "$bad"
}

# sanitizer_verdict NAME RC LOG MODE: judge a program run under ASan.
#   MODE strict: any leak, direct or indirect, fails. (Sessions with clients used to
#   leak through a Session <-> Connection reference cycle; the core now takes the
#   handler out of a session when it closes, so every run is strict.)
sanitizer_verdict() {
    local name="$1" rc="$2" log="$3" mode="$4"
    if grep -q 'ERROR: AddressSanitizer' "$log"; then
        fail "$name: AddressSanitizer error"
        grep -A12 'ERROR: AddressSanitizer' "$log" | sed 's/^/    /' | head -30
        return
    fi
    if grep -q 'panicked at' "$log"; then
        fail "$name: a Rust panic reached the API boundary"
        grep -B2 -A6 'panicked at' "$log" | sed 's/^/    /' | head -20
        return
    fi
    if grep -q 'Direct leak' "$log"; then
        fail "$name: LeakSanitizer found direct leaks"
        grep -A14 'Direct leak' "$log" | sed 's/^/    /' | head -60
        return
    fi
    if grep -q 'Indirect leak' "$log"; then
        if [ "$mode" = strict ]; then
            fail "$name: LeakSanitizer found leaks"
            grep -A14 'Indirect leak' "$log" | sed 's/^/    /' | head -40
            return
        fi
        printf '# %s: tolerated indirect-only leaks (core Session<->Connection cycle, see run.sh)\n' "$name"
    fi
    if [ "$rc" -ne 0 ] && { [ "$rc" -ne 23 ] || [ "$mode" = strict ]; }; then
        fail "$name: exit code $rc"
        return
    fi
    pass "$name: exits cleanly under AddressSanitizer (leak check: $mode)"
}

# wait_for_line FILE REGEX PID: wait (at most 30 s) for a line; echo it.
wait_for_line() {
    local file="$1" regex="$2" pid="$3" i
    for i in $(seq 1 300); do
        if grep -qE "$regex" "$file" 2>/dev/null; then
            grep -m1 -E "$regex" "$file"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

echo "# C API tests (libswarmcast, AddressSanitizer, socket.io-client)"

# --- build ---------------------------------------------------------------------
if ! step "cargo build -p swarmcast-c" cargo build -p swarmcast-c; then
    echo "$passed passed, $failed failed"
    exit 1
fi

# The header alone, as C and C++, pedantic.
printf '#include "swarmcast.h"\nint main(void) { return (int)SWARMCAST_RESULT_OK; }\n' >"$OUT/header.c"
cp "$OUT/header.c" "$OUT/header.cpp"
for std in c99 c11 c17; do
    step "header compiles as C ($std)" "$CC" -std="$std" -pedantic "${WARN[@]}" -Iinclude \
        -c "$OUT/header.c" -o "$OUT/header-$std.o"
done
for std in c++11 c++17 c++20; do
    step "header compiles as C++ ($std)" "$CXX" -std="$std" -pedantic "${WARN[@]}" -Iinclude \
        -c "$OUT/header.cpp" -o "$OUT/header-$std.o"
done

build_test() {
    local name="$1"
    step "compile tests/c/$name.c (ASan)" "$CC" -std=c11 "${WARN[@]}" "${ASAN[@]}" -Iinclude \
        "tests/c/$name.c" "$LIB" "${SYSLIBS[@]}" -o "$OUT/$name"
}
build_test bad_input
build_test e2e
build_test restart
build_test handoff
build_test teardown
build_test cluster
# ThreadSanitizer builds (see the TSan section below).
TSAN=(-fsanitize=thread -fno-omit-frame-pointer -g -O1)
for name in tsan teardown; do
    step "compile tests/c/$name.c (TSan)" "$CC" -std=c11 "${WARN[@]}" "${TSAN[@]}" -Iinclude \
        "tests/c/$name.c" "$LIB" "${SYSLIBS[@]}" -o "$OUT/$name-tsan"
done
# The complete example of docs/c.md (the first ```c block) must keep compiling.
awk '/^```c$/ {on = 1; next} /^```$/ && on {exit} on' docs/c.md >"$OUT/doc_example.c"
step "docs/c.md example compiles" "$CC" -std=c11 -pedantic "${WARN[@]}" -Iinclude \
    "$OUT/doc_example.c" "$LIB" "${SYSLIBS[@]}" -o "$OUT/doc_example"
step "make -C examples/c (static, shared, C++)" make -C examples/c BUILD="$OUT/examples" LIBDIR="$TARGET_DIR/debug" all
step "make -C examples/c asan" make -C examples/c BUILD="$OUT/examples" LIBDIR="$TARGET_DIR/debug" asan

# --- packaging: install into a temporary prefix, build with pkg-config only ------
# (the debug build, already there; `bindings/c/install.sh` alone installs the release one)
PKG="$OUT/prefix"
rm -rf "$PKG"
if step "bindings/c/install.sh --prefix (temporary)" \
    bash bindings/c/install.sh --prefix "$PKG" --profile debug --no-build; then
    export PKG_CONFIG_PATH="$PKG/lib/pkgconfig"
    # shellcheck disable=SC2046
    step "C program built with pkg-config --cflags --libs swarmcast (shared)" \
        "$CC" -std=c11 "${WARN[@]}" tests/c/pkgconfig_app.c \
        $(pkg-config --cflags --libs swarmcast) -Wl,-rpath,"$PKG/lib" -o "$OUT/pkgconfig_app"
    step "it runs against the installed libswarmcast.so" timeout 30 "$OUT/pkgconfig_app"
    step "it needs the SONAME, not the unversioned name" \
        bash -c "readelf -d '$OUT/pkgconfig_app' | grep -q 'NEEDED.*libswarmcast\.so\.[0-9]'"
    # shellcheck disable=SC2046
    step "C program built with pkg-config --static (static library)" \
        "$CC" -std=c11 "${WARN[@]}" -static-libgcc tests/c/pkgconfig_app.c \
        $(pkg-config --cflags swarmcast) "$PKG/lib/libswarmcast.a" \
        $(pkg-config --static --libs-only-l swarmcast | sed 's/-lswarmcast//') \
        -o "$OUT/pkgconfig_app_static"
    step "the static build runs" timeout 30 "$OUT/pkgconfig_app_static"
    step "both libraries export only swarmcast_ symbols" bash -c "
        ! nm -D --defined-only '$PKG/lib/libswarmcast.so' | awk '{print \$3}' | grep -v '^swarmcast_' | grep . &&
        ! nm -g --defined-only '$PKG/lib/libswarmcast.a' | awk 'NF==3 {print \$3}' | grep -v '^swarmcast_' | grep ."
    unset PKG_CONFIG_PATH
fi

# --- bad input -------------------------------------------------------------------
if [ -x "$OUT/bad_input" ]; then
    timeout 60 "$OUT/bad_input" >"$OUT/bad_input.out" 2>"$LOGS/bad_input.stderr"
    rc=$?
    count_checks "$OUT/bad_input.out"
    sanitizer_verdict "bad_input" "$rc" "$LOGS/bad_input.stderr" strict
fi

# --- examples without clients ----------------------------------------------------
if [ -x "$OUT/examples/hello-asan" ]; then
    timeout 30 "$OUT/examples/hello-asan" >"$LOGS/hello.out" 2>"$LOGS/hello.stderr"
    sanitizer_verdict "examples/c/hello.cpp" "$?" "$LOGS/hello.stderr" strict
fi
if [ -x "$OUT/examples/hello-shared" ]; then
    step "examples/c/hello.cpp linked to libswarmcast.so" timeout 30 "$OUT/examples/hello-shared"
fi
if [ -x "$OUT/examples/agents-asan" ]; then
    timeout 30 "$OUT/examples/agents-asan" --port 0 --agents 4 --seconds 1 \
        >"$LOGS/agents-alone.out" 2>"$LOGS/agents-alone.stderr"
    sanitizer_verdict "examples/c/agents.c, 4 agents, no client" "$?" "$LOGS/agents-alone.stderr" strict
fi

# --- examples/c/agents.c driven by socket.io-client -------------------------------
if [ -x "$OUT/examples/agents-asan" ]; then
    timeout 60 "$OUT/examples/agents-asan" --port 0 --agents 3 --seconds 5 \
        >"$LOGS/agents.out" 2>"$LOGS/agents.stderr" &
    pid=$!
    if line="$(wait_for_line "$LOGS/agents.out" 'listening on http://127.0.0.1:[0-9]+' "$pid")"; then
        port="$(sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line")"
        timeout 40 node tests/c/agents_client.mjs "$port" 3 >"$OUT/agents_client.out" 2>&1
        count_checks "$OUT/agents_client.out"
    else
        fail "examples/c/agents.c did not start listening"
    fi
    wait "$pid"
    sanitizer_verdict "examples/c/agents.c with a client" "$?" "$LOGS/agents.stderr" strict
fi

# --- end to end: C threads emit, socket.io-client receives ------------------------
if [ -x "$OUT/e2e" ]; then
    timeout 120 "$OUT/e2e" "$THREADS" "$PER_THREAD" >"$OUT/e2e.out" 2>"$LOGS/e2e.stderr" &
    pid=$!
    if line="$(wait_for_line "$OUT/e2e.out" '^PORT [0-9]+$' "$pid")"; then
        timeout 100 node tests/c/receiver.mjs "${line#PORT }" "$THREADS" "$PER_THREAD" \
            >"$OUT/receiver.out" 2>&1
        count_checks "$OUT/receiver.out"
    else
        fail "tests/c/e2e did not start listening"
    fi
    wait "$pid"
    rc=$?
    count_checks "$OUT/e2e.out"
    sanitizer_verdict "e2e" "$rc" "$LOGS/e2e.stderr" strict
fi

# --- restart: one server stopped and started again, a client after every start ----
if [ -x "$OUT/restart" ]; then
    timeout 90 "$OUT/restart" 2 >"$OUT/restart.out" 2>"$LOGS/restart.stderr" &
    pid=$!
    timeout 70 node tests/c/restart_client.mjs "$OUT/restart.out" 2 \
        >"$OUT/restart_client.out" 2>&1
    count_checks "$OUT/restart_client.out"
    wait "$pid"
    rc=$?
    count_checks "$OUT/restart.out"
    sanitizer_verdict "restart" "$rc" "$LOGS/restart.stderr" strict
fi

# --- handoff: emits on the library's thread; room changes and the disconnect wait --
if [ -x "$OUT/handoff" ]; then
    timeout 90 "$OUT/handoff" >"$OUT/handoff.out" 2>"$LOGS/handoff.stderr" &
    pid=$!
    timeout 70 node tests/c/handoff_client.mjs "$OUT/handoff.out" \
        >"$OUT/handoff_client.out" 2>&1
    count_checks "$OUT/handoff_client.out"
    wait "$pid"
    rc=$?
    count_checks "$OUT/handoff.out"
    sanitizer_verdict "handoff" "$rc" "$LOGS/handoff.stderr" strict
fi

# --- teardown: stop with a deadline, wait for teardown, an ack just before the stop --
if [ -x "$OUT/teardown" ]; then
    timeout 90 "$OUT/teardown" >"$OUT/teardown.out" 2>"$LOGS/teardown.stderr"
    rc=$?
    count_checks "$OUT/teardown.out"
    sanitizer_verdict "teardown" "$rc" "$LOGS/teardown.stderr" strict
fi

# --- ThreadSanitizer: bindings/c/tsan.supp silences the Rust runtime, not your races ---
# tsan_run NAME: run $OUT/NAME-tsan with the suppressions (output in $OUT/NAME-tsan.out,
# reports in $LOGS/NAME-tsan.stderr). Kernels with high mmap entropy make older TSan
# abort ("unexpected memory mapping"): then again without ASLR.
tsan_run() {
    local name="$1" supp="${2-suppressions=$ROOT/bindings/c/tsan.supp}"
    TSAN_OPTIONS="$supp" timeout 120 "$OUT/$name-tsan" >"$OUT/$name-tsan.out" \
        2>"$LOGS/$name-tsan.stderr"
    if grep -q 'unexpected memory mapping' "$LOGS/$name-tsan.stderr"; then
        TSAN_OPTIONS="$supp" timeout 120 setarch "$(uname -m)" -R "$OUT/$name-tsan" \
            >"$OUT/$name-tsan.out" 2>"$LOGS/$name-tsan.stderr"
    fi
}
tsan_reports() { grep -c 'WARNING: ThreadSanitizer' "$1" || true; }
if [ -x "$OUT/teardown-tsan" ]; then
    tsan_run teardown ""
    without="$(tsan_reports "$LOGS/teardown-tsan.stderr")"
    tsan_run teardown
    n="$(tsan_reports "$LOGS/teardown-tsan.stderr")"
    count_checks "$OUT/teardown-tsan.out"
    if [ "$n" -eq 0 ]; then
        pass "tests/c/teardown.c under TSan with bindings/c/tsan.supp: no report ($without without it)"
    else
        fail "tests/c/teardown.c under TSan with bindings/c/tsan.supp: $n reports (see target/c-tests/logs/teardown-tsan.stderr)"
        grep -A12 'WARNING: ThreadSanitizer' "$LOGS/teardown-tsan.stderr" | sed 's/^/    /' | head -40
    fi
fi
if [ -x "$OUT/tsan-tsan" ]; then
    tsan_run tsan
    n="$(tsan_reports "$LOGS/tsan-tsan.stderr")"
    count_checks "$OUT/tsan-tsan.out"
    if [ "$n" -eq 1 ] && grep -q 'SUMMARY: ThreadSanitizer: data race tests/c/tsan.c' "$LOGS/tsan-tsan.stderr" &&
        grep -q 'on_log tests/c/tsan.c' "$LOGS/tsan-tsan.stderr"; then
        pass "tests/c/tsan.c: the deliberate race between a log callback and main is reported, nothing else"
    else
        fail "tests/c/tsan.c: want exactly the deliberate race, got $n reports (see target/c-tests/logs/tsan-tsan.stderr)"
        grep -A12 'WARNING: ThreadSanitizer' "$LOGS/tsan-tsan.stderr" | sed 's/^/    /' | head -40
    fi
fi

# --- cluster: a C Redis emitter, two C nodes joined through a real redis-server ------
REDIS_PID=""
stop_redis() {
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
        REDIS_PID=""
    fi
}
trap stop_redis EXIT
# start_redis: a throwaway redis-server on a free loopback port (no persistence);
# sets REDIS_URL. Waits at most 10 s for it to answer.
start_redis() {
    local port i
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        >"$LOGS/redis-server.log" 2>&1 &
    REDIS_PID=$!
    REDIS_URL="redis://127.0.0.1:$port"
    for i in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
if ! command -v redis-server >/dev/null 2>&1; then
    fail "redis-server is missing (scripts/install-test-deps.sh installs it)"
elif ! start_redis; then
    fail "redis-server did not start (see target/c-tests/logs/redis-server.log)"
else
    pass "redis-server on $REDIS_URL"
    if [ -x "$OUT/cluster" ]; then
        timeout 120 "$OUT/cluster" "$REDIS_URL" >"$OUT/cluster.out" 2>"$LOGS/cluster.stderr" &
        pid=$!
        if line="$(wait_for_line "$OUT/cluster.out" '^PORTS [0-9]+ [0-9]+$' "$pid")"; then
            read -r _ port_a port_b <<<"$line"
            timeout 60 node tests/c/cluster_client.mjs "$port_a" "$port_b" \
                >"$OUT/cluster_client.out" 2>&1
            count_checks "$OUT/cluster_client.out"
        else
            fail "tests/c/cluster did not start its two nodes"
        fi
        wait "$pid"
        rc=$?
        count_checks "$OUT/cluster.out"
        sanitizer_verdict "cluster" "$rc" "$LOGS/cluster.stderr" strict
        # The emitter's keyed state, as the nodes load it: a1 set, a2 set then deleted,
        # version 3. (Live deltas to subscribers are not checked: when a node loads a map
        # while the emitter's deltas are in flight, the load moves the map's version past
        # deltas its subscribers never got, and they are skipped. A core issue of the
        # cluster's keyed state, reported; not the C API's.)
        state="$(redis-cli -u "$REDIS_URL" --no-raw HGETALL 'swarmcast:state:/:map:agents' | tr '\n' ' ')"
        version="$(redis-cli -u "$REDIS_URL" HGET 'swarmcast:state:/:maps' agents)"
        if [ "$state" = '1) "a1" 2) "{\"s\":\"idle\"}" ' ] && [ "$version" = 3 ]; then
            pass "the C emitter's keyed state is in Redis (a1 set, a2 deleted, version 3)"
        else
            fail "the C emitter's keyed state in Redis: got '$state' version '$version'"
        fi
    fi
    # examples/c/cluster.c: a node, a client of it, then the emit mode publishing to it.
    if [ -x "$OUT/examples/cluster-asan" ]; then
        timeout 60 "$OUT/examples/cluster-asan" --redis "$REDIS_URL" node --port 0 --seconds 15 \
            >"$LOGS/cluster-node.out" 2>"$LOGS/cluster-node.stderr" &
        pid=$!
        if line="$(wait_for_line "$LOGS/cluster-node.out" 'listening on http://127.0.0.1:[0-9]+' "$pid")"; then
            port="$(sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/' <<<"$line")"
            timeout 40 node tests/c/cluster_example_client.mjs "$port" status 3 \
                >"$OUT/cluster_example_client.out" 2>&1 &
            client=$!
            if wait_for_line "$OUT/cluster_example_client.out" '^connected$' "$client" >/dev/null; then
                timeout 30 "$OUT/examples/cluster-asan" --redis "$REDIS_URL" emit --count 3 \
                    status '{"agent":7,"state":"busy"}' >"$LOGS/cluster-emit.out" \
                    2>"$LOGS/cluster-emit.stderr"
                sanitizer_verdict "examples/c/cluster.c emit" "$?" "$LOGS/cluster-emit.stderr" strict
            else
                fail "the client of examples/c/cluster.c did not connect"
            fi
            wait "$client"
            count_checks "$OUT/cluster_example_client.out"
            kill -INT "$pid" 2>/dev/null
        else
            fail "examples/c/cluster.c node did not start listening"
        fi
        wait "$pid"
        sanitizer_verdict "examples/c/cluster.c node" "$?" "$LOGS/cluster-node.stderr" strict
    fi
    stop_redis
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
