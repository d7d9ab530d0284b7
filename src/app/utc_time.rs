//! When a message was published, as the page shows it: in UTC, short.
//!
//! ```text
//! datetime  2026-12-02T14:03:07Z   machine-readable
//! shown     14:03                  published today (today in UTC)
//!           2026-12-01 23:59       published another day
//! title     2026-12-02 14:03:07 UTC
//! ```
//!
//! UTC, and the page says so, rather than the server's local time: the C library's
//! `localtime_r` would add about 5 KB to the static binary (its time-zone file reader), which is
//! half of what the binary has left under its budget, and a visitor's zone may differ from the
//! server's anyway.

use std::time::SystemTime;

use super::chat::message::unix_ms;

/// A moment in UTC, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

const DAY: u64 = 86_400;

impl UtcTime {
    /// `unix_ms`, milliseconds since the Unix epoch.
    pub fn of_unix_ms(unix_ms: u64) -> UtcTime {
        let secs = unix_ms / 1_000;
        // Below 2^64 / 86,400 000 days, and each part below 60 or 24: no cast loses anything.
        let (year, month, day) = civil_date((secs / DAY) as i64);
        let in_day = (secs % DAY) as u32;
        UtcTime {
            year,
            month,
            day,
            hour: in_day / 3_600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
        }
    }

    pub fn now() -> UtcTime {
        UtcTime::of_unix_ms(unix_ms(SystemTime::now()))
    }

    /// For a `datetime` attribute: `2026-12-02T14:03:07Z`.
    pub fn datetime(&self) -> String {
        format!("{}T{}Z", self.date(), self.clock())
    }

    /// What the page shows: `14:03` on the same day as `today`, else `2026-12-01 14:03`.
    pub fn shown(&self, today: &UtcTime) -> String {
        let hh_mm = &self.clock()[..5];
        if (self.year, self.month, self.day) == (today.year, today.month, today.day) {
            hh_mm.to_owned()
        } else {
            format!("{} {hh_mm}", self.date())
        }
    }

    /// The full time, for a tooltip: `2026-12-02 14:03:07 UTC`.
    pub fn title(&self) -> String {
        format!("{} {} UTC", self.date(), self.clock())
    }

    fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `14:03:07`.
    fn clock(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// The (year, month, day) of the proleptic Gregorian calendar `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 14:03:07.250 UTC.
    const AFTERNOON_MS: u64 = 1_796_220_187_250;
    const DAY_MS: u64 = DAY * 1_000;

    fn at(unix_ms: u64) -> UtcTime {
        UtcTime::of_unix_ms(unix_ms)
    }

    #[test]
    fn a_time_is_said_in_utc() {
        let t = at(AFTERNOON_MS);
        assert_eq!(t.datetime(), "2026-12-02T14:03:07Z");
        assert_eq!(t.title(), "2026-12-02 14:03:07 UTC");
        assert_eq!(t.shown(&t), "14:03");
    }

    #[test]
    fn another_day_is_shown_with_its_date() {
        let today = at(AFTERNOON_MS);
        assert_eq!(at(AFTERNOON_MS - DAY_MS).shown(&today), "2026-12-01 14:03");
        assert_eq!(
            at(AFTERNOON_MS - 365 * DAY_MS).shown(&today),
            "2025-12-02 14:03"
        );
        // A clock that was set back: a message "from tomorrow" says its date too.
        assert_eq!(at(AFTERNOON_MS + DAY_MS).shown(&today), "2026-12-03 14:03");
    }

    #[test]
    fn midnight_starts_a_new_day() {
        let midnight = AFTERNOON_MS - 250 - (14 * 3_600 + 3 * 60 + 7) * 1_000;
        let last_moment = at(midnight - 1);
        let first_moment = at(midnight);
        assert_eq!(last_moment.datetime(), "2026-12-01T23:59:59Z");
        assert_eq!(first_moment.datetime(), "2026-12-02T00:00:00Z");
        assert_eq!(last_moment.shown(&first_moment), "2026-12-01 23:59");
        assert_eq!(first_moment.shown(&first_moment), "00:00");
        assert_eq!(last_moment.shown(&last_moment), "23:59");
        assert_eq!(first_moment.shown(&last_moment), "2026-12-02 00:00");
    }

    #[test]
    fn calendar_edges() {
        let day = |secs: u64| at(secs * 1_000).datetime();
        assert_eq!(day(0), "1970-01-01T00:00:00Z");
        // 2024 is a leap year, 2100 is not, 2000 is.
        assert_eq!(day(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(day(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(day(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(day(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn any_time_formats() {
        assert_eq!(at(u64::MAX).datetime(), "584556019-04-03T14:25:51Z");
        let now = UtcTime::now();
        assert_eq!(now.shown(&now).len(), "14:03".len());
    }
}
