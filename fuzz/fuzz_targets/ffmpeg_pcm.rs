#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| emo_fuzz::ffmpeg_pcm(data));
