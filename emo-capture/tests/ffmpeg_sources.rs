//! `file:` and `ffmpeg:` sources for real: fixtures made with ffmpeg's generators, played at
//! real-time pace through the ffmpeg CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

use emo_capture::{
    open_camera, open_microphone, AudioChunk, CameraOptions, CaptureError, FrameSlot, SourceEvent,
    SourceKind, SourceSpec, SourceState,
};

/// A `secs`-second clip: a moving test pattern at 25 fps and a 440 Hz sine at 44.1 kHz stereo.
fn clip(dir: &Path, secs: u32) -> PathBuf {
    let out = dir.join(format!("clip{secs}.mkv"));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x240:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={secs}"
        ))
        .args([
            "-ac",
            "2",
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
            "-c:a",
            "pcm_s16le",
            "-shortest",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (packaging/install-deps.sh)");
    assert!(st.success());
    out
}

fn opts(fps: f64, width: u32, height: u32) -> CameraOptions {
    CameraOptions { fps, width, height }
}

/// Wait for the next event of a given state (other events are collected into `seen`).
fn wait_for(
    rx: &Receiver<SourceEvent>,
    state: SourceState,
    within: Duration,
    seen: &mut Vec<SourceEvent>,
) -> Option<SourceEvent> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(e) if e.state == state => return Some(e),
            Ok(e) => seen.push(e),
            Err(_) => return None,
        }
    }
}

/// Polls `cond` until it holds; panics naming `what` after `within`. Tests wait for what they
/// need (a frame counted, a source finished) rather than sleeping a fixed time, which a loaded
/// machine can outlast.
fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    // A reaped child has no /proc entry; a zombie would still show up as state Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

#[test]
fn a_video_file_plays_at_real_time_pace_at_the_configured_rate_and_size_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path(), 3);
    let slot = FrameSlot::new();
    let (etx, erx) = mpsc::channel();
    let cam = open_camera(
        &SourceSpec::File(path.clone()),
        &opts(10.0, 160, 120),
        slot.clone(),
        etx,
    )
    .unwrap();
    let first = erx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first.kind, SourceKind::Camera);
    assert_eq!(first.state, SourceState::Active);
    assert!(cam.description().contains("clip3.mkv"));
    // Playback time is counted from here: how long ffmpeg took to start is not the media's pace.
    let t0 = Instant::now();
    let mut frames = Vec::new();
    let ended = loop {
        if let Some(f) = slot.take(Duration::from_millis(50)) {
            frames.push(f);
        }
        if let Ok(e) = erx.try_recv() {
            break e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the file never ended"
        );
    };
    let took = t0.elapsed();
    while let Some(f) = slot.take(Duration::ZERO) {
        frames.push(f);
    }
    assert_eq!(ended.state, SourceState::Ended, "{ended:?}");
    assert!(ended.message.contains("end of input"), "{}", ended.message);
    // Real-time pace: 3 s of media take about 3 s (not the ~0.1 s decoding would take; the
    // upper bound only catches a pace far off real time, with room for a loaded machine).
    assert!(
        took > Duration::from_millis(2400) && took < Duration::from_millis(6000),
        "3 s of video took {took:?}"
    );
    // fps × duration frames, all at the configured size, with distinct content (the test
    // pattern moves) and capture times spread over the playback.
    let n = frames.len();
    assert!((27..=32).contains(&n), "{n} frames for 3 s at 10 fps");
    assert_eq!(slot.frames_in() as usize, n);
    assert_eq!(slot.frames_dropped(), 0, "a fast consumer loses nothing");
    assert!(frames.iter().all(|f| f.image.dimensions() == (160, 120)));
    assert_ne!(frames[0].image, frames[n - 1].image);
    let span = frames[n - 1]
        .captured
        .duration_since(frames[0].captured)
        .unwrap();
    eprintln!("3 s file at 10 fps: {n} frames of 160x120 in {took:?}, capture times span {span:?}");
    assert!(
        span > Duration::from_millis(2400),
        "capture times span {span:?}"
    );
    assert!(frames.windows(2).all(|w| w[1].captured >= w[0].captured));
    wait_until(
        "an ended file source finishes (is not retried)",
        Duration::from_secs(5),
        || cam.is_finished(),
    );
    assert!(cam.child_pids().is_empty());
}

#[test]
fn a_file_s_audio_comes_as_continuous_16k_mono_chunks_at_real_time_pace() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path(), 3);
    let (ctx, crx) = mpsc::sync_channel::<AudioChunk>(64);
    let (etx, erx) = mpsc::channel();
    let mic = open_microphone(&SourceSpec::File(path), ctx, etx).unwrap();
    assert_eq!(erx.recv().unwrap().state, SourceState::Active);
    // Playback time is counted from the first audio: ffmpeg's start is not the media's pace.
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let ended = wait_for(&erx, SourceState::Ended, Duration::from_secs(15), &mut seen).unwrap();
    let took = t0.elapsed();
    assert!(seen.is_empty(), "{seen:?}");
    assert!(ended.message.contains("end of input"), "{}", ended.message);
    let chunks: Vec<AudioChunk> = crx.try_iter().collect();
    let total: usize = chunks.iter().map(|c| c.samples.len()).sum();
    eprintln!(
        "3 s file: {total} samples at 16 kHz in {} chunks, {took:?}",
        chunks.len()
    );
    assert!(
        took > Duration::from_millis(2400) && took < Duration::from_millis(6000),
        "3 s of audio took {took:?}"
    );
    // 16 kHz × 3 s, nothing lost or duplicated between chunks.
    assert!(
        (47_000..=49_000).contains(&total),
        "{total} samples for 3 s"
    );
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c.samples.len() == emo_capture::CHUNK_SAMPLES));
    assert_eq!(mic.overruns(), 0);
    // The 440 Hz sine (ffmpeg's amplitude 1/8: RMS 0.088) arrives whole and in range.
    let all: Vec<f32> = chunks
        .iter()
        .flat_map(|c| c.samples.iter().copied())
        .collect();
    let r = rms(&all[1600..all.len() - 1600]);
    assert!((0.07..0.11).contains(&r), "rms {r}");
    assert!(all.iter().all(|v| (-1.0..=1.0).contains(v)));
    // Zero crossings: 440 Hz → 880 a second.
    let crossings = all
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let hz = crossings as f64 / 2.0 / (total as f64 / 16_000.0);
    assert!((430.0..450.0).contains(&hz), "{hz} Hz");
    // Capture times: the first sample's wall-clock time, ~100 ms apart, spread like the audio.
    let span = chunks
        .last()
        .unwrap()
        .captured
        .duration_since(chunks[0].captured)
        .unwrap();
    assert!(
        span > Duration::from_millis(2300) && span < Duration::from_millis(3600),
        "{span:?}"
    );
    assert!(chunks[0].captured <= SystemTime::now());
}

#[test]
fn a_slow_consumer_gets_the_latest_frame_and_the_rest_are_counted_as_dropped() {
    let slot = FrameSlot::new();
    let (etx, _erx) = mpsc::channel();
    let spec: SourceSpec = "ffmpeg:-re -f lavfi testsrc=size=320x240:rate=30"
        .parse()
        .unwrap();
    let mut cam = open_camera(&spec, &opts(20.0, 64, 48), slot.clone(), etx).unwrap();
    let mut taken = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(300));
        let f = slot.take(Duration::from_secs(1)).expect("a frame");
        taken += 1;
        // Latest wins: what the consumer gets is fresh, not 300 ms old.
        let age = SystemTime::now()
            .duration_since(f.captured)
            .unwrap_or_default();
        assert!(age < Duration::from_millis(200), "took a frame {age:?} old");
    }
    cam.stop();
    let (inn, dropped) = (slot.frames_in(), slot.frames_dropped());
    let pending = u64::from(slot.take(Duration::ZERO).is_some());
    eprintln!(
        "slow consumer: {inn} frames in, {taken} taken, {dropped} dropped, {pending} pending"
    );
    assert_eq!(
        inn,
        taken + dropped + pending,
        "in {inn}, taken {taken}, dropped {dropped}"
    );
    assert!(inn >= 40, "20 fps for ~2.5 s, got {inn}");
    assert!(
        dropped >= 30,
        "a consumer at ~3 fps drops most of 20 fps, dropped {dropped}"
    );
}

#[test]
fn stop_during_playback_kills_and_reaps_ffmpeg_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path(), 20);
    let spec = SourceSpec::File(path);

    let slot = FrameSlot::new();
    let (etx, erx) = mpsc::channel();
    let mut cam = open_camera(&spec, &opts(10.0, 160, 120), slot.clone(), etx.clone()).unwrap();
    let (ctx, crx) = mpsc::sync_channel(64);
    let mic = open_microphone(&spec, ctx, etx).unwrap();
    // Until both play: some frames and audio chunks have arrived.
    let mut chunks = 0;
    wait_until("frames and audio flow", Duration::from_secs(15), || {
        chunks += crx.try_iter().count();
        slot.frames_in() > 3 && chunks > 3
    });
    let cam_pids = cam.child_pids();
    let mic_pids = mic.child_pids();
    assert_eq!(cam_pids.len(), 1);
    assert_eq!(mic_pids.len(), 1);
    for &p in cam_pids.iter().chain(&mic_pids) {
        assert!(alive(p), "ffmpeg {p} runs during playback");
        assert_eq!(comm(p), "ffmpeg");
    }

    let t = Instant::now();
    cam.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(
        !alive(cam_pids[0]),
        "the camera's ffmpeg was killed and reaped"
    );
    assert!(cam.child_pids().is_empty());
    assert!(alive(mic_pids[0]), "the microphone is independent");
    cam.stop(); // idempotent

    let t = Instant::now();
    drop(mic);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drop took {:?}",
        t.elapsed()
    );
    assert!(
        !alive(mic_pids[0]),
        "dropping the microphone killed its ffmpeg"
    );
    // A stopped source reports no state change (it did not end or get lost).
    let states: Vec<SourceState> = erx.try_iter().map(|e| e.state).collect();
    assert_eq!(states, vec![SourceState::Active, SourceState::Active]);
}

#[test]
fn missing_or_unreadable_inputs_are_unavailable_at_once() {
    let slot = FrameSlot::new();
    let (etx, erx) = mpsc::channel();
    let o = opts(10.0, 160, 120);

    let t = Instant::now();
    let missing = SourceSpec::File("/nonexistent/clip.mp4".into());
    let e = open_camera(&missing, &o, slot.clone(), etx.clone())
        .err()
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(200));
    match &e {
        CaptureError::Unavailable { source, message } => {
            assert_eq!(*source, SourceKind::Camera);
            assert!(message.contains("/nonexistent/clip.mp4"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let (ctx, _crx) = mpsc::sync_channel(4);
    let e = open_microphone(&missing, ctx.clone(), etx.clone())
        .err()
        .unwrap();
    assert!(
        matches!(
            &e,
            CaptureError::Unavailable {
                source: SourceKind::Microphone,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("microphone unavailable: "), "{e}");

    // A file that is not media: ffmpeg refuses it, and its reason is passed on.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.mp4");
    std::fs::write(&junk, b"this is not a video").unwrap();
    let t = Instant::now();
    let e = open_camera(&SourceSpec::File(junk), &o, slot.clone(), etx.clone())
        .err()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(e.to_string().contains("ffmpeg:"), "{e}");

    // An ffmpeg: input that cannot be opened.
    let t = Instant::now();
    let bad: SourceSpec = "ffmpeg:/nonexistent/stream.ts".parse().unwrap();
    let e = open_microphone(&bad, ctx.clone(), etx.clone())
        .err()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(e.to_string().contains("No such file"), "{e}");

    // A video-only input has no audio for the microphone.
    let e = open_microphone(
        &"ffmpeg:-f lavfi testsrc=duration=1".parse().unwrap(),
        ctx,
        etx.clone(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, CaptureError::Unavailable { .. }), "{e:?}");

    // Configured as none.
    let e = open_camera(&SourceSpec::None, &o, slot.clone(), etx.clone())
        .err()
        .unwrap();
    assert!(e.to_string().contains("none"), "{e}");
    // Absurd options.
    let e = open_camera(&missing, &opts(0.0, 160, 120), slot, etx)
        .err()
        .unwrap();
    assert!(matches!(e, CaptureError::InvalidOptions(_)), "{e:?}");
    assert!(erx.try_recv().is_err(), "failed opens send no events");
}

#[test]
fn an_ffmpeg_input_that_dies_is_lost_then_reopened_and_recovered() {
    // A 1-second generated stream: it "dies" after a second, and every reopen plays again.
    let spec: SourceSpec = "ffmpeg:-re -f lavfi testsrc=size=160x120:rate=10:duration=1"
        .parse()
        .unwrap();
    let slot = FrameSlot::new();
    let (etx, erx) = mpsc::channel();
    let t0 = Instant::now();
    let mut cam = open_camera(&spec, &opts(10.0, 160, 120), slot.clone(), etx).unwrap();
    let mut seen = Vec::new();
    assert_eq!(erx.recv().unwrap().state, SourceState::Active);
    let lost = wait_for(&erx, SourceState::Lost, Duration::from_secs(15), &mut seen).unwrap();
    let t_lost = t0.elapsed();
    assert!(lost.message.contains("lost"), "{}", lost.message);
    let rec = wait_for(
        &erx,
        SourceState::Recovered,
        Duration::from_secs(15),
        &mut seen,
    )
    .unwrap();
    let t_rec = t0.elapsed();
    assert!(seen.is_empty(), "{seen:?}");
    assert!(rec.message.contains("back"), "{}", rec.message);
    // The first back-off is 0.5 s (plus ffmpeg's start, which a loaded machine may stretch).
    let gap = t_rec - t_lost;
    assert!(
        gap >= Duration::from_millis(450) && gap < Duration::from_secs(10),
        "{gap:?}"
    );
    let before = slot.frames_in();
    wait_until(
        "frames flow again after recovery",
        Duration::from_secs(5),
        || slot.frames_in() > before,
    );
    let t = Instant::now();
    cam.stop();
    assert!(t.elapsed() < Duration::from_secs(1));
    // Stopped during a back-off or a run alike: no more events.
    std::thread::sleep(Duration::from_millis(800));
    let more: Vec<_> = erx.try_iter().collect();
    assert!(
        more.iter().all(|e| e.state != SourceState::Active),
        "{more:?}"
    );
}

#[test]
fn a_source_lost_for_good_backs_off_and_stops_promptly_in_back_off() {
    // Opens, then every reopen fails (the generator has a tiny duration but the input is
    // checked by ffmpeg on each start): stop must return within a second in back-off too.
    let spec: SourceSpec = "ffmpeg:-re -f lavfi sine=frequency=300:duration=0.5"
        .parse()
        .unwrap();
    let (ctx, crx) = mpsc::sync_channel(64);
    let (etx, erx) = mpsc::channel();
    let mut mic = open_microphone(&spec, ctx, etx).unwrap();
    let mut seen = Vec::new();
    wait_for(&erx, SourceState::Lost, Duration::from_secs(15), &mut seen).unwrap();
    assert!(
        crx.try_iter().count() >= 4,
        "half a second of audio arrived"
    );
    std::thread::sleep(Duration::from_millis(100)); // inside the 0.5 s back-off
    let t = Instant::now();
    mic.stop();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(mic.is_finished());
}

/// ffmpeg processes whose command line mentions `needle`.
fn ffmpeg_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.starts_with("ffmpeg") && cmd.contains(needle) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn an_input_that_hangs_is_unavailable_after_the_open_timeout_and_its_ffmpeg_is_killed() {
    // A FIFO nobody writes to: ffmpeg blocks opening it, like a camera URL that never answers.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("never.rgb");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let spec = SourceSpec::Ffmpeg(format!(
        "-f rawvideo -pixel_format rgb24 -video_size 8x8 {}",
        fifo.display()
    ));
    let (etx, erx) = mpsc::channel();
    let t = Instant::now();
    let e = open_camera(&spec, &opts(10.0, 160, 120), FrameSlot::new(), etx)
        .err()
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= emo_capture::OPEN_TIMEOUT
            && took < emo_capture::OPEN_TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
    assert!(e.to_string().contains("nothing received within"), "{e}");
    assert!(erx.try_recv().is_err());
    assert!(
        ffmpeg_with("never.rgb").is_empty(),
        "the hanging ffmpeg was killed"
    );
}
