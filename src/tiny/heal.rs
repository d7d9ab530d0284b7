//! Healing: when the connections tiny_http holds for good (`held.rs`) pass [`BUDGET`], the
//! server replaces its own image (`handoff.rs`). The new image starts with none of them: every
//! descriptor but the listener is close-on-exec, and every thread ends at the exec.
//!
//! A budget crossed again soon after a re-exec means the flood goes on, or that it left
//! connections queued, which the new image accepts in turn. Re-executing at once each time
//! would end every stream over and over, so re-execs in a row wait longer each time: 1 s after
//! the last one, 1 s, 2 s, 4 s, and then 5 s at most ([`PAUSES`]); an image that ran [`CALM`]
//! without healing starts the series afresh.
//!
//! Under a flood that never stops, the server so re-execs every 5 s; between two re-execs it
//! serves what it accepts (streams end cleanly at each re-exec, and pages resume by
//! `Last-Event-ID`). When the flood stops, the server is back within about 5 s plus the grace
//! (`held.rs`), as long as one image can take in what the listen queue holds (4,096 connections:
//! an image holds about half its open-file limit in connections, 7,900 at the default limits);
//! with a lower limit, it takes one re-exec per that many queued connections.
//!
//! Measured with a debug build, one loopback client sending the four shapes of `held.rs` at 200
//! connections a second for 60 s, a counter page and a chat page open, a message published
//! every second: at the default limits (15,870 open files), 15 re-execs, every `POST /ping`
//! probe answered (551 of 551, p99 217 ms), both pages resumed 15 times with no id skipped or
//! repeated and every message received, and all back at once after the flood. With 1,024 open
//! files: 19 re-execs, 129 of 150 probes answered during the flood, pages as above, and back
//! 27 s after it (a full listen queue, about 500 connections taken in per image).

use std::time::{Duration, SystemTime};

/// Connections held for good past which the server re-execs: 32 threads and 64 descriptors, so
/// that what it keeps after a flood is within 64 of each; under 7 % of a 1,024 open-file
/// limit, and under 1 % of the default capacity.
pub const BUDGET: usize = 32;

/// The pauses after each re-exec of a series, in seconds; the last one stands for all that
/// follow: after a flood, a queue of its connections is drained, and the server back, within
/// about it plus the grace (`held.rs`).
const PAUSES: [u64; 5] = [1, 1, 2, 4, 5];
/// An image that ran this long since the last re-exec starts a new series.
pub const CALM: Duration = Duration::from_secs(60);

/// The re-execs for healing that came before, as the handoff carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    /// Re-execs in a row, each within [`CALM`] of the one before.
    pub count: u32,
    /// When the last one was made.
    pub last: SystemTime,
}

impl Series {
    /// The series after one more re-exec at `now`.
    pub fn next(previous: Option<Series>, now: SystemTime) -> Series {
        let count = ongoing(previous, now).map_or(1, |series| series.count.saturating_add(1));
        Series { count, last: now }
    }

    /// When the next re-exec may come.
    pub fn next_allowed(&self) -> SystemTime {
        let nth = usize::try_from(self.count.saturating_sub(1)).unwrap_or(usize::MAX);
        self.last + Duration::from_secs(PAUSES[nth.min(PAUSES.len() - 1)])
    }
}

/// The series `previous`, unless the image ran [`CALM`] since its last re-exec.
fn ongoing(previous: Option<Series>, now: SystemTime) -> Option<Series> {
    previous.filter(|series| !now.duration_since(series.last).is_ok_and(|ran| ran >= CALM))
}

/// What the sweep should do about the connections held for good.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget.
    Fine,
    /// Over it, but the last re-exec was too recent: wait until then.
    Wait(SystemTime),
    /// Re-exec now.
    Heal,
}

pub fn verdict(held: usize, previous: Option<Series>, now: SystemTime) -> Verdict {
    if held <= BUDGET {
        return Verdict::Fine;
    }
    match ongoing(previous, now).map(|series| series.next_allowed()) {
        Some(allowed) if allowed > now => Verdict::Wait(allowed),
        _ => Verdict::Heal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn within_the_budget_nothing_happens() {
        assert_eq!(verdict(BUDGET, None, at(100)), Verdict::Fine);
        assert_eq!(verdict(BUDGET + 1, None, at(100)), Verdict::Heal);
    }

    #[test]
    fn re_execs_in_a_row_wait_longer_each_time_up_to_five_seconds() {
        let mut series = None;
        let mut now = at(1_000);
        let mut pauses = Vec::new();
        for _ in 0..7 {
            let made = Series::next(series, now);
            let allowed = made.next_allowed();
            assert_eq!(verdict(BUDGET + 1, Some(made), now), Verdict::Wait(allowed));
            let pause = allowed.duration_since(now).unwrap();
            assert_eq!(verdict(BUDGET + 1, Some(made), now + pause), Verdict::Heal);
            pauses.push(pause.as_secs());
            series = Some(made);
            now += pause;
        }
        assert_eq!(pauses, [1, 1, 2, 4, 5, 5, 5]);
    }

    #[test]
    fn a_calm_image_starts_a_new_series() {
        let long_ago = Series {
            count: 9,
            last: at(1_000),
        };
        let now = at(1_000) + CALM;
        assert_eq!(verdict(BUDGET + 1, Some(long_ago), now), Verdict::Heal);
        assert_eq!(Series::next(Some(long_ago), now).count, 1);
    }
}
