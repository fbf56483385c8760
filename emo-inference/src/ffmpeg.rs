//! `ffmpeg` / `ffprobe` child processes that cannot hang or leak: see the `emo-ffmpeg` crate,
//! shared with the capture sources. Its errors become [`Error::Media`].

pub use emo_ffmpeg::{last_line, output, FfChild, FfError};

use crate::Error;

impl From<FfError> for Error {
    fn from(e: FfError) -> Self {
        Error::Media(e.0)
    }
}
