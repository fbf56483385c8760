#!/usr/bin/env bash
# Runs EMO's whole test suite: unit tests, the daemon's end-to-end tests against SQLite and
# PostgreSQL (EMO_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; they
# are skipped with a notice when no server answers unless EMO_REQUIRE_POSTGRES=1/true/yes), the model
# checks with the real ONNX models, and the TUI tests (tmux).
set -euo pipefail
cd "$(dirname "$0")/.."
./packaging/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
./packaging/install-onnxruntime.sh
# The PostgreSQL tests skip themselves when no server answers (their notice is hidden by cargo's
# output capture), so say it here where it is seen.
pg_url="${EMO_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v pg_isready >/dev/null && ! pg_isready -q -d "$pg_url"; then
  require_pg="${EMO_REQUIRE_POSTGRES:-0}"
  if [[ "${require_pg,,}" =~ ^(1|true|yes)$ ]]; then
    echo "PostgreSQL at $pg_url does not answer and EMO_REQUIRE_POSTGRES=$require_pg: its tests will fail" >&2
  else
    echo "NOTICE: PostgreSQL at $pg_url does not answer: the PostgreSQL tests are SKIPPED" >&2
    echo "        (start a server or set EMO_TEST_DATABASE_URL; EMO_REQUIRE_POSTGRES=1 makes this a failure)" >&2
  fi
fi
# A real audio server for the microphone tests (cpal opens ALSA's default, routed to a
# PulseAudio with a virtual source). Needs root; elsewhere those tests say SKIPPED.
if [ "$(id -u)" = 0 ]; then
  ./packaging/audio-test-env.sh || echo "NOTICE: no audio server: the microphone tests are SKIPPED" >&2
else
  echo "NOTICE: not root: no audio server is started; the microphone tests are SKIPPED" >&2
fi
# `cargo test --workspace` builds the emod binary (its own integration tests run it), so the TUI's
# end-to-end tests use that one instead of a second `cargo build -p emod` with other features.
if [ $# -eq 0 ]; then
  export EMOD_BIN="${EMOD_BIN:-${CARGO_TARGET_DIR:-target}/debug/emod}"
fi
# Tests that skip themselves (no PostgreSQL, no tmux, no audio server, ...) append
# `<test>: <reason>` to $EMO_SKIP_LOG; cargo hides a passing test's stderr, so the count and the
# reasons are printed here after the run, whatever its outcome.
skip_log="$(mktemp "${TMPDIR:-/tmp}/emo-skips.XXXXXX")"
export EMO_SKIP_LOG="$skip_log"
status=0
cargo test --workspace --locked "$@" || status=$?
if [ -s "$skip_log" ]; then
  echo "SKIPPED: $(wc -l <"$skip_log") test(s) skipped themselves:" >&2
  sed 's/^[^:]*: //' "$skip_log" | sort | uniq -c | sort -rn | sed 's/^/  /' >&2
  echo "  (tests: $(cut -d: -f1 "$skip_log" | sort -u | tr '\n' ' '))" >&2
else
  echo "No test skipped itself."
fi
rm -f "$skip_log"
# The running daemon against its own OpenAPI document (Schemathesis, bounded to a few minutes;
# issue 18). Only for the whole suite (no cargo arguments); it uses the emod binary built above.
if [ $# -eq 0 ]; then
  ./packaging/schemathesis.sh || status=$?
fi
# Brief libFuzzer runs of the decoders the network reaches (fuzz/, issue 18): ~15 s per target
# from the committed corpora and crash inputs, after an instrumented build of their own in
# fuzz/target (570 s of CPU time cold, ~6 min on two idle cores). Only for the whole
# suite; EMO_FUZZ_SMOKE=0 skips it (the corpora are still replayed by `cargo test`, in
# tests/emod/fuzz_corpus.rs).
if [ $# -eq 0 ]; then
  if [ "${EMO_FUZZ_SMOKE:-1}" = 0 ]; then
    echo "NOTICE: EMO_FUZZ_SMOKE=0: the brief fuzzer runs are SKIPPED" >&2
  else
    ./packaging/fuzz-smoke.sh || status=$?
  fi
fi
exit "$status"
