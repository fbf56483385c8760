//! A one-frame mailbox: the newest frame wins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::VideoFrame;

/// Latest frame wins: a producer overwrites a frame nobody took yet (counted as dropped), the
/// consumer waits for the next one with a timeout. Holds at most one frame, so a slow consumer
/// never makes frames queue up.
pub struct FrameSlot {
    state: Mutex<SlotState>,
    cv: Condvar,
    frames_in: AtomicU64,
    frames_dropped: AtomicU64,
}

#[derive(Default)]
struct SlotState {
    frame: Option<VideoFrame>,
    closed: bool,
}

impl FrameSlot {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState::default()),
            cv: Condvar::new(),
            frames_in: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
        })
    }

    /// Offer a frame; an untaken older frame is replaced and counted as dropped. Ignored once
    /// the slot is closed.
    pub fn put(&self, f: VideoFrame) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.closed {
            return;
        }
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        if s.frame.replace(f).is_some() {
            self.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(s);
        self.cv.notify_one();
    }

    /// The newest frame, waiting up to `timeout` for one. `None` on timeout or once closed.
    pub fn take(&self, timeout: Duration) -> Option<VideoFrame> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.closed {
                return None;
            }
            if let Some(f) = s.frame.take() {
                return Some(f);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Frames put so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// Frames replaced before anybody took them.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped.load(Ordering::Relaxed)
    }

    /// Close the slot: a waiting and every later `take` returns `None` at once, `put` is ignored,
    /// and the held frame is released.
    pub fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.closed = true;
        s.frame = None;
        drop(s);
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn frame(v: u8) -> VideoFrame {
        VideoFrame {
            captured: SystemTime::now(),
            image: image::RgbImage::from_pixel(2, 2, image::Rgb([v, v, v])),
        }
    }

    #[test]
    fn the_latest_frame_wins_and_overwrites_are_counted() {
        let s = FrameSlot::new();
        s.put(frame(1));
        s.put(frame(2));
        s.put(frame(3));
        assert_eq!(s.frames_in(), 3);
        assert_eq!(s.frames_dropped(), 2);
        assert_eq!(s.take(Duration::ZERO).unwrap().image.get_pixel(0, 0)[0], 3);
        assert!(s.take(Duration::from_millis(20)).is_none());
        s.put(frame(4));
        assert_eq!(s.frames_dropped(), 2, "a taken frame is not a drop");
    }

    #[test]
    fn take_wakes_up_for_a_put_and_close() {
        let s = FrameSlot::new();
        let s2 = s.clone();
        let h = std::thread::spawn(move || s2.take(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        s.put(frame(7));
        assert_eq!(h.join().unwrap().unwrap().image.get_pixel(0, 0)[0], 7);

        let s2 = s.clone();
        let t0 = Instant::now();
        let h = std::thread::spawn(move || s2.take(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        s.close();
        assert!(h.join().unwrap().is_none());
        assert!(t0.elapsed() < Duration::from_secs(2));
        s.put(frame(8));
        assert!(
            s.take(Duration::from_secs(1)).is_none(),
            "closed: None at once"
        );
    }
}
