//! The contract every capture source keeps, checked the same way for each (after vector's
//! `assert_source_compliance`): the pipeline in emod relies on exactly this and nothing more.
//!
//! * The first event is `active` for the source's kind; a finite source (a `file:`) reports
//!   `ended` after it and nothing after that; a stopped source's ffmpeg children are reaped.
//! * Frames and chunks carry their capture time: never earlier than the open, never later than
//!   now, never going back.
//! * Frames have the configured size; audio is 16-kHz mono `f32` in chunks.
//! * The audio callback never blocks: a consumer that stops reading costs chunks (counted as
//!   overruns), not a stalled source, and what it reads afterwards is fresh.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use emo_capture::{
    open_camera, open_microphone, CameraOptions, FrameSlot, SourceEvent, SourceKind, SourceSpec,
    SourceState,
};

/// Slack for clocks read on two threads.
const SLACK: Duration = Duration::from_millis(1500);

fn first_event(rx: &mpsc::Receiver<SourceEvent>, kind: SourceKind) {
    let e = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("no event within 15 s of opening");
    assert_eq!((e.kind, e.state), (kind, SourceState::Active), "{e:?}");
}

fn in_time(t: SystemTime, opened: SystemTime, last: &mut SystemTime, what: &str) {
    assert!(
        t + SLACK >= opened,
        "{what} captured before the source was opened"
    );
    assert!(
        t <= SystemTime::now() + SLACK,
        "{what} captured in the future"
    );
    assert!(
        t >= *last,
        "{what} capture times go back by {:?}",
        last.duration_since(t).unwrap_or_default()
    );
    *last = t;
}

/// Until `ended` (finite sources): the events after `active`; `ended` must come within `max`
/// and be the last one.
fn ends(rx: &mpsc::Receiver<SourceEvent>, max: Duration) {
    let deadline = Instant::now() + max;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("a finite source did not report `ended`");
        let e = rx
            .recv_timeout(left)
            .expect("a finite source did not report `ended`");
        if e.state == SourceState::Ended {
            break;
        }
        assert_ne!(e.state, SourceState::Active, "`active` twice: {e:?}");
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "an event after `ended`"
    );
}

/// A camera source: `spec` opened at `opts`; `finite` sources must end by themselves within
/// `max`, the others are stopped after some frames.
pub fn assert_video_compliance(
    spec: &SourceSpec,
    opts: &CameraOptions,
    finite: bool,
    max: Duration,
) {
    let (etx, erx) = mpsc::channel();
    let slot = FrameSlot::new();
    let opened = SystemTime::now();
    let mut cam = open_camera(spec, opts, slot.clone(), etx).expect("open");
    first_event(&erx, SourceKind::Camera);
    let mut last = SystemTime::UNIX_EPOCH;
    let mut frames = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while frames < 5 && Instant::now() < deadline {
        if let Some(f) = slot.take(Duration::from_millis(200)) {
            assert_eq!(
                (f.image.width(), f.image.height()),
                (opts.width, opts.height),
                "frame size"
            );
            in_time(f.captured, opened, &mut last, "a frame");
            frames += 1;
        }
    }
    assert!(frames >= 5, "only {frames} frames within 15 s");
    if finite {
        // Keep taking frames so the source is never held up, until it says it ended.
        let (tx, rx) = mpsc::channel();
        let s2 = slot.clone();
        let drain = std::thread::spawn(move || {
            while rx.try_recv().is_err() {
                s2.take(Duration::from_millis(50));
            }
        });
        ends(&erx, max);
        tx.send(()).unwrap();
        drain.join().unwrap();
        let t = Instant::now();
        while !cam.is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "an ended source keeps running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        let t = Instant::now();
        cam.stop();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "stop took {:?}",
            t.elapsed()
        );
    }
    assert!(cam.child_pids().is_empty(), "ffmpeg children left behind");
}

/// A microphone source (see [`assert_video_compliance`]); the consumer also stops reading for
/// two seconds, which must cost chunks (overruns), not stall the source.
pub fn assert_audio_compliance(spec: &SourceSpec, finite: bool, max: Duration) {
    let (etx, erx) = mpsc::channel();
    let (ctx, crx) = mpsc::sync_channel(4);
    let opened = SystemTime::now();
    let mut mic = open_microphone(spec, ctx, etx).expect("open");
    first_event(&erx, SourceKind::Microphone);
    let mut last = SystemTime::UNIX_EPOCH;
    let mut samples = 0usize;
    let deadline = Instant::now() + Duration::from_secs(15);
    while samples < 8_000 && Instant::now() < deadline {
        if let Ok(c) = crx.recv_timeout(Duration::from_millis(200)) {
            assert!(!c.samples.is_empty(), "an empty chunk");
            assert!(c.samples.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
            in_time(c.captured, opened, &mut last, "a chunk");
            samples += c.samples.len();
        }
    }
    assert!(
        samples >= 8_000,
        "only {samples} samples (16 kHz) within 15 s"
    );
    if !finite {
        // The consumer stalls: the source must not.
        std::thread::sleep(Duration::from_secs(2));
        assert!(mic.overruns() > 0, "a full channel counted no overruns");
        while crx.try_recv().is_ok() {}
        let c = crx
            .recv_timeout(Duration::from_secs(5))
            .expect("the source stalled behind a slow consumer");
        let age = SystemTime::now()
            .duration_since(c.captured)
            .unwrap_or_default();
        assert!(
            age < Duration::from_secs(2),
            "a stale chunk after the stall: {age:?} old"
        );
        let t = Instant::now();
        mic.stop();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "stop took {:?}",
            t.elapsed()
        );
    } else {
        let drain = std::thread::spawn(move || while crx.recv().is_ok() {});
        ends(&erx, max);
        let t = Instant::now();
        while !mic.is_finished() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "an ended source keeps running"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(mic);
        drain.join().unwrap();
        return;
    }
    assert!(mic.child_pids().is_empty(), "ffmpeg children left behind");
}
