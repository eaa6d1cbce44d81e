//! Completeness: DICOM gives no reliable instance count, so — like Orthanc's StableAge and
//! mercure — a study is complete when the four required sequences are identified AND no new
//! instance has arrived for `stable_seconds`. After `force_after_seconds` of quiet without them
//! the study is reported incomplete, with what is missing and why the candidates were rejected.

use serde::{Deserialize, Serialize};

/// Lifecycle of a study.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyState {
    Receiving,
    Complete,
    Processed,
    Incomplete,
    Failed,
}

/// Timing rules, seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub stable_seconds: f64,
    pub force_after_seconds: f64,
}

/// The state a receiving study moves to at `now`, if any.
pub fn decide(has_all_four: bool, last_arrival: f64, now: f64, t: &Timing) -> Option<StudyState> {
    let quiet = now - last_arrival;
    if has_all_four && quiet >= t.stable_seconds {
        Some(StudyState::Complete)
    } else if !has_all_four && quiet >= t.force_after_seconds {
        Some(StudyState::Incomplete)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_quiet_then_decides() {
        let t = Timing {
            stable_seconds: 10.0,
            force_after_seconds: 60.0,
        };
        assert_eq!(decide(true, 100.0, 105.0, &t), None);
        assert_eq!(decide(true, 100.0, 110.0, &t), Some(StudyState::Complete));
        assert_eq!(decide(false, 100.0, 150.0, &t), None);
        assert_eq!(
            decide(false, 100.0, 160.0, &t),
            Some(StudyState::Incomplete)
        );
    }
}
