//! The session's subject among the faces of a live video.
//!
//! Only the person who consented is classified: bystanders walking behind the agent, or a
//! colleague leaning in, must be neither classified nor stored. Faces are followed from frame to
//! frame by box overlap (IoU); the subject is the track that is largest and most persistent, and
//! it keeps that role while it stays in view, so a passer-by with a bigger face for a few frames
//! does not take over.

use crate::face::{iou, Detection};

/// Smallest IoU that continues a track.
const MATCH_IOU: f32 = 0.3;
/// Frames a track survives without a matching detection.
const MAX_MISSES: u32 = 15;
/// Frames a challenger must be seen before it can replace a subject that left.
const MIN_HITS: u32 = 2;

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    det: Detection,
    hits: u32,
    misses: u32,
    /// Running mean of the box area, so one odd detection does not decide.
    area: f32,
}

impl Track {
    /// Larger and longer-seen faces score higher; persistence saturates after ~3 s at 10 fps.
    fn score(&self) -> f32 {
        self.area * (self.hits.min(30) as f32)
    }
}

/// Follows faces across frames and names the subject's detection in each.
#[derive(Debug, Default)]
pub struct SubjectTracker {
    tracks: Vec<Track>,
    subject: Option<u64>,
    next_id: u64,
}

impl SubjectTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Update with one frame's detections; returns the index in `dets` of the subject's face,
    /// or `None` when the subject is not in this frame (no face, or only bystanders while the
    /// subject is briefly hidden).
    pub fn update(&mut self, dets: &[Detection]) -> Option<usize> {
        // Greedy matching by IoU, best pairs first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                let o = iou(&t.det, d);
                if o >= MATCH_IOU {
                    pairs.push((o, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_track: Vec<Option<usize>> = vec![None; dets.len()];
        for (_, ti, di) in pairs {
            if !track_used[ti] && det_track[di].is_none() {
                track_used[ti] = true;
                det_track[di] = Some(ti);
            }
        }
        for (ti, t) in self.tracks.iter_mut().enumerate() {
            if !track_used[ti] {
                t.misses += 1;
            }
        }
        for (di, d) in dets.iter().enumerate() {
            match det_track[di] {
                Some(ti) => {
                    let t = &mut self.tracks[ti];
                    t.det = d.clone();
                    t.hits += 1;
                    t.misses = 0;
                    t.area = 0.8 * t.area + 0.2 * d.area();
                }
                None => {
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id: self.next_id,
                        det: d.clone(),
                        hits: 1,
                        misses: 0,
                        area: d.area(),
                    });
                    det_track[di] = Some(self.tracks.len() - 1);
                }
            }
        }
        self.tracks.retain(|t| t.misses <= MAX_MISSES);
        let subject_alive = self
            .subject
            .is_some_and(|id| self.tracks.iter().any(|t| t.id == id));
        if !subject_alive {
            // Pick the best visible track; with no subject yet, the first frame may decide.
            let need = if self.subject.is_none() && self.tracks.iter().all(|t| t.hits <= 1) {
                1
            } else {
                MIN_HITS
            };
            self.subject = self
                .tracks
                .iter()
                .filter(|t| t.misses == 0 && t.hits >= need)
                .max_by(|a, b| a.score().total_cmp(&b.score()))
                .map(|t| t.id);
        }
        let sid = self.subject?;
        dets.iter().enumerate().find_map(|(di, _)| {
            let ti = det_track[di]?;
            let t = self.tracks.get(ti)?;
            (t.id == sid && t.misses == 0).then_some(di)
        })
    }

    /// Faces being followed (subject and bystanders).
    pub fn tracks(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, size: f32) -> Detection {
        Detection {
            xmin: x,
            ymin: y,
            xmax: x + size,
            ymax: y + size,
            score: 0.9,
            keypoints: vec![],
        }
    }

    #[test]
    fn the_largest_persistent_face_is_the_subject_and_keeps_the_role() {
        let mut t = SubjectTracker::new();
        // The agent (large, centre) and a small bystander.
        let agent = |dx: f32| det(200.0 + dx, 100.0, 200.0);
        let by = det(20.0, 20.0, 60.0);
        assert_eq!(t.update(&[by.clone(), agent(0.0)]), Some(1));
        for i in 0..10 {
            assert_eq!(t.update(&[agent(i as f32 * 3.0), by.clone()]), Some(0));
        }
        // A passer-by with a bigger face appears for a moment: the agent stays the subject.
        let big = det(380.0, 50.0, 260.0);
        assert_eq!(t.update(&[big.clone(), agent(30.0)]), Some(1));
        // The agent is hidden for a few frames: nobody is classified (not the bystanders).
        for _ in 0..3 {
            assert_eq!(t.update(std::slice::from_ref(&by)), None);
        }
        // The agent comes back to the same place and is the subject again.
        assert_eq!(t.update(&[by.clone(), agent(30.0)]), Some(1));
    }

    #[test]
    fn a_subject_who_left_is_replaced_by_the_best_remaining_face() {
        let mut t = SubjectTracker::new();
        let a = det(200.0, 100.0, 200.0);
        let b = det(0.0, 0.0, 100.0);
        assert_eq!(t.update(&[a.clone(), b.clone()]), Some(0));
        for _ in 0..=MAX_MISSES {
            t.update(std::slice::from_ref(&b));
        }
        assert_eq!(t.update(std::slice::from_ref(&b)), Some(0));
        assert_eq!(t.update(&[]), None);
        assert!(t.tracks() >= 1);
    }
}
