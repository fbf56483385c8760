//! Bounds on what decoding one file may cost. Files reach the decoders from the network
//! (`POST /api/v1/analyze`), so every allocation that scales with a header field or with the
//! decoded length is checked against these before it is made, and every decoder returns an error
//! instead of aborting the process.

use std::time::Duration;

/// Lowest sample rate accepted from a file (telephone audio).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate accepted from a file (studio audio).
pub const MAX_SAMPLE_RATE: u32 = 192_000;
/// Most channels accepted in a WAV file.
pub const MAX_CHANNELS: u16 = 64;

/// What one analysed file may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaLimits {
    /// Longest audio or video, in seconds of media time.
    pub max_seconds: f64,
    /// Largest image or video frame, in pixels (width × height).
    pub max_pixels: u64,
    /// Longest an `ffmpeg`/`ffprobe` child may run for one file.
    pub ffmpeg_deadline: Duration,
}

impl Default for MediaLimits {
    /// Generous limits for the command line (a user's own files): 3 hours, 64 MP frames.
    fn default() -> Self {
        Self {
            max_seconds: 3.0 * 3600.0,
            max_pixels: 8192 * 8192,
            ffmpeg_deadline: Duration::from_secs(3600),
        }
    }
}

impl MediaLimits {
    /// Most samples of one channel that `max_seconds` allows at `rate`.
    pub fn max_samples(&self, rate: u32) -> usize {
        (self.max_seconds.max(0.0) * rate as f64).ceil() as usize
    }

    /// An error unless `rate` is in the accepted range.
    pub fn check_rate(rate: u32) -> crate::Result<()> {
        if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
            Ok(())
        } else {
            Err(crate::Error::Limit(format!(
                "unsupported sample rate {rate} Hz (accepted: {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz)"
            )))
        }
    }

    /// The error for media longer than `max_seconds`.
    pub fn too_long(&self) -> crate::Error {
        crate::Error::Limit(format!(
            "longer than the limit of {} s",
            self.max_seconds.round()
        ))
    }

    /// An error unless a `w`×`h` picture is within `max_pixels`.
    pub fn check_pixels(&self, w: u64, h: u64) -> crate::Result<()> {
        if w == 0 || h == 0 {
            return Err(crate::Error::Limit(format!(
                "unsupported frame size {w}x{h}"
            )));
        }
        if w.saturating_mul(h) > self.max_pixels {
            return Err(crate::Error::Limit(format!(
                "{w}x{h} is over the limit of {} pixels",
                self.max_pixels
            )));
        }
        Ok(())
    }
}
