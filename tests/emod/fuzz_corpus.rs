//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`)
//! through the fuzz harness (`fuzz/src/lib.rs`, included here) without libFuzzer: the decoders
//! the network reaches must answer each of them with a value or an error, never a panic. This is
//! what keeps the fuzzers' findings fixed in the normal test suite; `packaging/fuzz-smoke.sh`
//! runs the fuzzers themselves.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{target}: {} panicked", p.display());
            n += 1;
        }
    }
    // An empty or missing corpus would make this test pass without testing anything.
    assert!(
        n >= 2,
        "{target}: only {n} corpus inputs found under {}",
        root.display()
    );
}

#[test]
fn wav_corpus() {
    replay("wav", harness::wav);
}

#[test]
fn image_corpus() {
    replay("image", harness::image);
}

#[test]
fn ffmpeg_pcm_corpus() {
    replay("ffmpeg_pcm", harness::ffmpeg_pcm);
}

#[test]
fn ffmpeg_frames_corpus() {
    replay("ffmpeg_frames", harness::ffmpeg_frames);
}

#[test]
fn json_bodies_corpus() {
    replay("json_bodies", harness::json_bodies);
}

#[test]
fn multipart_corpus() {
    replay("multipart", harness::multipart);
}
