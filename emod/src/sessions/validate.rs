//! What a session and its samples must satisfy before anything is stored.

use std::collections::HashSet;

use emo_api_types::{Emotion, Modality, SampleBatch};

use crate::error::{AppError, AppResult};

/// Most samples one request may carry.
pub const MAX_BATCH: usize = 10_000;
/// Allowed clock skew between a capture client and the daemon.
pub const SKEW_MS: i64 = 60_000;
/// 2000-01-01T00:00:00Z. Older timestamps are typos or clock faults; refusing them also keeps
/// every stored time positive, which the roll-up arithmetic (`t - t % 3600000`) relies on.
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// A free-text field (label, display name): no control characters, which would reach admins'
/// terminals as escape sequences, no invisible or direction-changing characters, and at most
/// `max` characters.
pub fn text(field: &str, s: &str, max: usize) -> AppResult<()> {
    if s.chars().count() > max {
        return Err(AppError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if s.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(AppError::invalid(format!(
            "{field} must not contain control, invisible or text-direction characters"
        )));
    }
    Ok(())
}

/// Characters that show nothing or rearrange what follows in a terminal or table: line and
/// paragraph separators (U+2028/9), zero-width spaces and joiners, bidirectional embeddings,
/// overrides and isolates (U+202E writes the rest backwards), word joiners, the BOM.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}')
}

/// Checks a batch; the message names the offending sample.
pub fn validate_batch(batch: &SampleBatch, started_at: i64, now: i64) -> Result<(), String> {
    if batch.samples.is_empty() {
        return Err("samples must not be empty".into());
    }
    if batch.samples.len() > MAX_BATCH {
        return Err(format!("at most {MAX_BATCH} samples per request"));
    }
    let mut seen = HashSet::new();
    for (i, s) in batch.samples.iter().enumerate() {
        let t = s.t.timestamp_millis();
        // Never before the start: consent was given at the start, not earlier.
        if t < started_at {
            return Err(format!("samples[{i}].t is before the session started"));
        }
        if t > now + SKEW_MS {
            return Err(format!("samples[{i}].t lies in the future"));
        }
        if !(0.0..=1.0).contains(&s.confidence) {
            return Err(format!("samples[{i}].confidence must be between 0 and 1"));
        }
        if s.modality != Modality::Voice
            && (s.emotion == Emotion::Calm || s.probabilities.contains_key(&Emotion::Calm))
        {
            return Err(format!(
                "samples[{i}]: `calm` exists only for voice estimates (face and fused use 7 classes)"
            ));
        }
        if s.probabilities.values().any(|p| !(0.0..=1.0).contains(p)) {
            return Err(format!(
                "samples[{i}].probabilities must each be between 0 and 1"
            ));
        }
        if !s.probabilities.is_empty() {
            let sum: f64 = s.probabilities.values().sum();
            if (sum - 1.0).abs() > 0.02 {
                return Err(format!("samples[{i}].probabilities sum to {sum:.3}, not 1"));
            }
            // The label is the most probable class; a contradicting pair is a client bug.
            let top = s.probabilities.values().copied().fold(0.0f64, f64::max);
            let own = s.probabilities.get(&s.emotion).copied().unwrap_or(0.0);
            if own + 1e-6 < top {
                return Err(format!(
                    "samples[{i}].emotion is {} but its probabilities favour another class",
                    s.emotion
                ));
            }
        }
        if !seen.insert((s.modality, t)) {
            return Err(format!(
                "samples[{i}] repeats the {} estimate at {}",
                s.modality, s.t
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use emo_api_types::SampleIn;
    use std::collections::BTreeMap;

    fn sample(t_ms: i64, modality: Modality, emotion: Emotion, conf: f64) -> SampleIn {
        SampleIn {
            t: DateTime::from_timestamp_millis(t_ms).unwrap(),
            modality,
            emotion,
            confidence: conf,
            probabilities: BTreeMap::new(),
        }
    }

    #[test]
    fn text_fields_refuse_control_characters_and_length() {
        assert!(text("label", "Café call 3", 200).is_ok());
        for bad in [
            "a\u{1b}]2;owned\u{7}",
            "line\nbreak",
            "tab\t",
            "nul\u{0}",
            "c1\u{9b}2J",
        ] {
            assert!(text("label", bad, 200).is_err(), "{bad:?}");
        }
        assert!(text("label", &"é".repeat(200), 200).is_ok());
        assert!(text("label", &"é".repeat(201), 200).is_err());
    }

    #[test]
    fn batch_validation_names_the_sample() {
        let ok = SampleBatch {
            samples: vec![sample(1_000_000, Modality::Fused, Emotion::Happy, 0.9)],
        };
        assert!(validate_batch(&ok, 1_000_000, 1_000_000).is_ok());
        let cases = [
            (
                sample(1_000_000, Modality::Fused, Emotion::Happy, 1.5),
                "confidence",
            ),
            (
                sample(1_000_000, Modality::Face, Emotion::Calm, 0.5),
                "calm",
            ),
            (
                sample(
                    1_000_000 + 3 * SKEW_MS,
                    Modality::Fused,
                    Emotion::Happy,
                    0.5,
                ),
                "future",
            ),
            (
                sample(1_000_000 - 1, Modality::Fused, Emotion::Happy, 0.5),
                "before",
            ),
        ];
        for (s, word) in cases {
            let b = SampleBatch {
                samples: vec![sample(1_000_000, Modality::Voice, Emotion::Calm, 0.5), s],
            };
            let err = validate_batch(&b, 1_000_000, 1_000_000).unwrap_err();
            assert!(err.starts_with("samples[1]") && err.contains(word), "{err}");
        }
        let mut p = sample(1_000_000, Modality::Fused, Emotion::Happy, 0.9);
        p.probabilities.insert(Emotion::Happy, 0.5);
        let err = validate_batch(
            &SampleBatch {
                samples: vec![p.clone()],
            },
            0,
            1_000_000,
        )
        .unwrap_err();
        assert!(err.contains("sum"), "{err}");
        p.probabilities.insert(Emotion::Happy, 0.4);
        p.probabilities.insert(Emotion::Sad, 0.6);
        let err = validate_batch(&SampleBatch { samples: vec![p] }, 0, 1_000_000).unwrap_err();
        assert!(err.contains("favour another class"), "{err}");
        let dup = SampleBatch {
            samples: vec![
                sample(5, Modality::Face, Emotion::Sad, 0.1),
                sample(5, Modality::Face, Emotion::Sad, 0.1),
            ],
        };
        assert!(validate_batch(&dup, 0, 10).unwrap_err().contains("repeats"));
        assert!(validate_batch(&SampleBatch { samples: vec![] }, 0, 0).is_err());
    }
}
