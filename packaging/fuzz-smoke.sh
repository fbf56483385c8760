#!/usr/bin/env bash
# Brief libFuzzer runs of every fuzz target in fuzz/ (issue 18): builds them (a separate,
# instrumented release build in fuzz/target), then fuzzes each for EMO_FUZZ_SECONDS (default 20)
# from a scratch copy of its committed corpus, with the limits the long runs use. Any crash,
# timeout or out-of-memory fails the script and leaves the input in fuzz/artifacts/<target>/.
# The committed corpora themselves are replayed by `cargo test` (tests/fuzz_corpus.rs); this
# looks for new inputs. Needs cargo-fuzz (installed here when missing) and, on a stable
# toolchain, RUSTC_BOOTSTRAP=1 for the -Z flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
secs="${EMO_FUZZ_SECONDS:-20}"
targets="${EMO_FUZZ_TARGETS:-wav image ffmpeg_pcm ffmpeg_frames json_bodies multipart}"
# No sanitizer: EMO forbids unsafe code, so the fuzzers look for panics, hangs and allocations,
# which need no ASan, and run several times faster without it.
cargo fuzz build -s none
for t in $targets; do
  scratch="$(mktemp -d)"
  cp -r "corpus/$t/." "$scratch/"
  echo "fuzz-smoke: $t for ${secs}s"
  cargo fuzz run -s none "$t" "$scratch" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=8192 -print_final_stats=1
  rm -rf "$scratch"
done
