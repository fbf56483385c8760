//! Criterion benches of the hot functions: features (log-mel window, MFCC), detector
//! preprocessing, anchor decoding + NMS, aligned crops, and (when the models and ONNX Runtime are
//! available) the detector and the whole face pipeline.
//!
//!     cargo bench -p emo-inference --bench hot

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use emo_inference::bench::{bench_audio, bench_frame};
use emo_inference::face::{
    aligned_crop, decode, generate_anchors, letterbox_input, weighted_nms, Detection,
};
use emo_inference::features::{fit_window, Dct, FeatureExtractor, FeatureSpec};
use emo_inference::{Engine, EngineOptions, RuntimeConfig};

fn spec() -> FeatureSpec {
    FeatureSpec {
        kind: "logmel64_v1".into(),
        sample_rate: 16000,
        window_samples: 48000,
        n_fft: 512,
        win_length: 400,
        hop_length: 160,
        n_mels: 64,
        fmin: 50.0,
        fmax: 8000.0,
        log_offset: 1e-6,
        norm_eps: 1e-5,
    }
}

fn features(c: &mut Criterion) {
    let audio = bench_audio(10).unwrap();
    let window = fit_window(&audio, 48000);
    let mut fx = FeatureExtractor::new(spec()).unwrap();
    c.bench_function("logmel_window_3s", |b| {
        b.iter(|| black_box(fx.logmel(black_box(&window))))
    });
    let dct = Dct::new(40, 64);
    c.bench_function("mfcc40_10s", |b| {
        b.iter(|| black_box(fx.mfcc_with(black_box(&audio), &dct)))
    });
}

fn face_cpu(c: &mut Criterion) {
    let frame = bench_frame(1).unwrap();
    let mut buf = Vec::new();
    c.bench_function("letterbox_640x480_to_128", |b| {
        b.iter(|| {
            black_box(letterbox_input(
                black_box(&frame),
                128,
                [-1.0, 1.0],
                &mut buf,
            ))
        })
    });
    let anchors = generate_anchors(128, &[8, 16], &[2, 6], 0.5);
    // Synthetic raw outputs: a cluster of 12 overlapping detections and background.
    let mut reg = vec![0.0f32; 896 * 16];
    let mut logits = vec![-8.0f32; 896];
    for i in 0..12 {
        let a = 300 + i;
        logits[a] = 2.0 + i as f32 * 0.1;
        reg[a * 16 + 2] = 40.0;
        reg[a * 16 + 3] = 40.0;
    }
    c.bench_function("decode_and_weighted_nms_896", |b| {
        b.iter(|| {
            black_box(weighted_nms(
                decode(black_box(&reg), black_box(&logits), &anchors, 128.0, 0.5),
                0.3,
            ))
        })
    });
    let det = Detection {
        xmin: 250.0,
        ymin: 120.0,
        xmax: 330.0,
        ymax: 200.0,
        score: 0.9,
        keypoints: vec![[272.0, 150.0], [308.0, 155.0]],
    };
    let mut out = vec![0.0f32; 48 * 48];
    c.bench_function("aligned_crop_48", |b| {
        b.iter(|| aligned_crop(black_box(&frame), black_box(&det), 48, 1.25, &mut out))
    });
}

fn models(c: &mut Criterion) {
    let dir = std::env::var_os("EMO_TEST_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let rt = RuntimeConfig {
        intra_threads: 1,
        ..Default::default()
    };
    let Ok(engine) = Engine::load(&EngineOptions::new(dir, rt)) else {
        eprintln!("models/ONNX Runtime unavailable: skipping model benches");
        return;
    };
    let frame = bench_frame(1).unwrap();
    if let Ok(fp) = engine.faces() {
        c.bench_function("face_detector_640x480", |b| {
            b.iter(|| black_box(fp.detector.detect(&frame).unwrap()))
        });
        c.bench_function("face_pipeline_1face", |b| {
            b.iter(|| black_box(fp.analyze(&frame).unwrap()))
        });
    }
    if let Ok(sp) = engine.speech() {
        let audio = bench_audio(10).unwrap();
        c.bench_function("speech_10s", |b| {
            b.iter(|| black_box(sp.analyze(&audio).unwrap()))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = features, face_cpu, models
}
criterion_main!(benches);
