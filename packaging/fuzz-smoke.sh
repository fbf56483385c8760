#!/usr/bin/env bash
# Brief libFuzzer runs of every fuzz target in fuzz/ (issue 18), part of packaging/test.sh's whole
# suite: builds them (an instrumented build of its own in fuzz/target, see the profile comment in
# fuzz/Cargo.toml for why it is a `--dev` build), then fuzzes each for EMO_FUZZ_SECONDS (default
# 15) from a scratch copy of its committed corpus plus its committed crash inputs
# (fuzz/regressions/<target>/), with the limits the long runs use. Every target runs even when an
# earlier one failed; any crash, timeout (-timeout) or out-of-memory (-rss_limit_mb) fails the
# script and leaves the input in fuzz/artifacts/<target>/, with the command that reproduces it.
# The committed corpora themselves are also replayed by `cargo test` (tests/emod/fuzz_corpus.rs); this
# looks for new inputs.
#
#   EMO_FUZZ_SECONDS   seconds per target (default 15; six targets, so ~1.5 min of fuzzing)
#   EMO_FUZZ_TARGETS   which targets (default: all six)
#
# Needs cargo-fuzz (this version is installed when missing, ~1.5 min) and, on a stable
# toolchain, RUSTC_BOOTSTRAP=1 for the -Z flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export RUSTC_BOOTSTRAP=1
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
secs="${EMO_FUZZ_SECONDS:-15}"
targets="${EMO_FUZZ_TARGETS:-wav image ffmpeg_pcm ffmpeg_frames json_bodies multipart}"
# The same flags for build and run (different ones would rebuild). No sanitizer: EMO forbids
# unsafe code, so the fuzzers look for panics (debug assertions and overflow checks are on),
# hangs and allocations, which need no ASan, and run several times faster without it.
flags=(--dev -s none)
cargo fuzz build "${flags[@]}"
failed=()
summary=()
# Artifacts newer than this are this run's findings (fuzz/artifacts/ keeps earlier ones).
started="$(mktemp "${TMPDIR:-/tmp}/emo-fuzz-start.XXXXXX")"
for t in $targets; do
  scratch="$(mktemp -d "${TMPDIR:-/tmp}/emo-fuzz-$t.XXXXXX")"
  cp -r "corpus/$t/." "$scratch/"
  seeds=()
  [ -d "regressions/$t" ] && seeds+=("regressions/$t")
  log="$scratch.log"
  echo "fuzz-smoke: $t for ${secs}s"
  if cargo fuzz run "${flags[@]}" "$t" "$scratch" "${seeds[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
    -print_final_stats=1 2>&1 | tee "$log"; then
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    summary+=("$t: ${execs:-?} executions, no finding")
  else
    failed+=("$t")
    summary+=("$t: FAILED (input in fuzz/artifacts/$t/)")
  fi
  rm -rf "$scratch" "$log"
done
printf 'fuzz-smoke: %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]}; crashing inputs:" >&2
  for t in "${failed[@]}"; do
    find "artifacts/$t" -type f -newer "$started" 2>/dev/null | sed 's|^|  fuzz/|' >&2
  done
  rm -f "$started"
  exit 1
fi
rm -f "$started"
