//! When a message was published, as the page shows it: in the server's local time, short.
//!
//! ```text
//! datetime  2026-12-02T14:03:07+01:00   machine-readable, with its offset (Z for UTC)
//! shown     14:03                       published today (the server's today)
//!           2026-12-01 23:59            published another day
//! title     2026-12-02 14:03:07 UTC+01:00
//! ```
//!
//! The offset comes from the C library's `localtime_r` (`TZ`, else `/etc/localtime`), so it
//! follows daylight saving; everything else is computed here from the offset, which keeps the
//! formatting testable without a time zone. A time the C library cannot place is shown in UTC,
//! and the title says so.

use std::time::SystemTime;

use super::chat::message::unix_ms;

/// A moment in a fixed offset from UTC, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Seconds east of UTC, in whole minutes.
    offset: i32,
}

const DAY: i64 = 86_400;

impl LocalTime {
    /// `unix_ms` (milliseconds since the Unix epoch) in the server's time zone.
    pub fn of_unix_ms(unix_ms: u64) -> LocalTime {
        let secs = i64::try_from(unix_ms / 1_000).unwrap_or(i64::MAX);
        LocalTime::with_offset(secs, zone_offset(secs))
    }

    /// Now, in the server's time zone.
    pub fn now() -> LocalTime {
        LocalTime::of_unix_ms(unix_ms(SystemTime::now()))
    }

    /// `unix_secs` at `offset` seconds east of UTC (cut to whole minutes, which is all a
    /// `datetime` attribute can say).
    pub fn with_offset(unix_secs: i64, offset: i32) -> LocalTime {
        let offset = offset - offset % 60;
        let local = unix_secs.saturating_add(i64::from(offset));
        let (year, month, day) = civil_date(local.div_euclid(DAY));
        let in_day = local.rem_euclid(DAY);
        // Each is below 60 or 24, so the casts cannot lose anything.
        LocalTime {
            year,
            month,
            day,
            hour: (in_day / 3_600) as u32,
            minute: (in_day / 60 % 60) as u32,
            second: (in_day % 60) as u32,
            offset,
        }
    }

    /// For a `datetime` attribute: `2026-12-02T14:03:07+01:00`, or `…Z` in UTC.
    pub fn datetime(&self) -> String {
        let zone = match self.offset {
            0 => "Z".to_owned(),
            offset => self.offset_text(offset),
        };
        format!("{}T{}{zone}", self.date(), self.clock(true))
    }

    /// What the page shows: `14:03` on the same local day as `today`, else `2026-12-01 14:03`.
    pub fn shown(&self, today: &LocalTime) -> String {
        if self.same_day(today) {
            self.clock(false)
        } else {
            format!("{} {}", self.date(), self.clock(false))
        }
    }

    /// The full time and its zone, for a tooltip: `2026-12-02 14:03:07 UTC+01:00`.
    pub fn title(&self) -> String {
        let zone = match self.offset {
            0 => "UTC".to_owned(),
            offset => format!("UTC{}", self.offset_text(offset)),
        };
        format!("{} {} {zone}", self.date(), self.clock(true))
    }

    fn same_day(&self, other: &LocalTime) -> bool {
        (self.year, self.month, self.day) == (other.year, other.month, other.day)
    }

    fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    fn clock(&self, seconds: bool) -> String {
        if seconds {
            format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
        } else {
            format!("{:02}:{:02}", self.hour, self.minute)
        }
    }

    fn offset_text(&self, offset: i32) -> String {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

/// The (year, month, day) of the proleptic Gregorian calendar `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`, exact for every `i64` day this module meets).
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

/// Seconds east of UTC of the server's time zone at `unix_secs`; 0 (UTC) if the C library
/// cannot tell.
#[allow(unsafe_code)]
fn zone_offset(unix_secs: i64) -> i32 {
    let Some(time) = libc::time_t::try_from(unix_secs).ok() else {
        return 0;
    };
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: localtime_r reads the one `time_t` and, on success, fills the `tm` it is given and
    // returns its address; on failure it returns null and `tm` is not read. It is the reentrant
    // form: it keeps no static buffer, and takes its zone lock itself. (It reads `TZ`, which
    // nothing in this program changes.)
    let tm = unsafe {
        if libc::localtime_r(&time, tm.as_mut_ptr()).is_null() {
            return 0;
        }
        tm.assume_init()
    };
    i32::try_from(tm.tm_gmtoff)
        .ok()
        .filter(|offset| offset.abs() < 86_400)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 14:03:07 UTC.
    const AFTERNOON: i64 = 1_796_220_187;

    fn at(unix_secs: i64, offset: i32) -> LocalTime {
        LocalTime::with_offset(unix_secs, offset)
    }

    #[test]
    fn a_time_in_utc_says_z_and_utc() {
        let t = at(AFTERNOON, 0);
        assert_eq!(t.datetime(), "2026-12-02T14:03:07Z");
        assert_eq!(t.title(), "2026-12-02 14:03:07 UTC");
        assert_eq!(t.shown(&t), "14:03");
    }

    #[test]
    fn a_time_east_or_west_of_utc_carries_its_offset() {
        let east = at(AFTERNOON, 3_600 + 30 * 60);
        assert_eq!(east.datetime(), "2026-12-02T15:33:07+01:30");
        assert_eq!(east.title(), "2026-12-02 15:33:07 UTC+01:30");
        let west = at(AFTERNOON, -5 * 3_600);
        assert_eq!(west.datetime(), "2026-12-02T09:03:07-05:00");
        assert_eq!(west.title(), "2026-12-02 09:03:07 UTC-05:00");
    }

    #[test]
    fn another_day_is_shown_with_its_date() {
        let today = at(AFTERNOON, 0);
        assert_eq!(at(AFTERNOON - DAY, 0).shown(&today), "2026-12-01 14:03");
        assert_eq!(
            at(AFTERNOON - 365 * DAY, 0).shown(&today),
            "2025-12-02 14:03"
        );
        // A clock that went back: a message "from tomorrow" says so too.
        assert_eq!(at(AFTERNOON + DAY, 0).shown(&today), "2026-12-03 14:03");
    }

    #[test]
    fn midnight_starts_a_new_day() {
        let midnight = AFTERNOON - (14 * 3_600 + 3 * 60 + 7);
        let last_second = at(midnight - 1, 0);
        let first_second = at(midnight, 0);
        assert_eq!(last_second.datetime(), "2026-12-01T23:59:59Z");
        assert_eq!(first_second.datetime(), "2026-12-02T00:00:00Z");
        assert_eq!(last_second.shown(&first_second), "2026-12-01 23:59");
        assert_eq!(first_second.shown(&first_second), "00:00");
        assert_eq!(last_second.shown(&last_second), "23:59");
    }

    #[test]
    fn the_day_is_the_local_one_not_utcs() {
        // 23:30 UTC is already tomorrow at +01:00 and still today at -01:00.
        let late = AFTERNOON + 9 * 3_600 + 27 * 60 - 7;
        let now_east = at(late + 60, 3_600);
        assert_eq!(at(late, 3_600).shown(&now_east), "00:30");
        assert_eq!(at(AFTERNOON, 3_600).shown(&now_east), "2026-12-02 15:03");
        let now_west = at(late + 60, -3_600);
        assert_eq!(at(AFTERNOON, -3_600).shown(&now_west), "13:03");
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(at(0, 0).datetime(), "1970-01-01T00:00:00Z");
        assert_eq!(at(-1, 0).datetime(), "1969-12-31T23:59:59Z");
        // 2024 is a leap year, 2100 is not, 2000 is.
        assert_eq!(at(1_709_164_800, 0).datetime(), "2024-02-29T00:00:00Z");
        assert_eq!(at(4_107_542_400, 0).datetime(), "2100-03-01T00:00:00Z");
        assert_eq!(at(951_782_400, 0).datetime(), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_767_225_599, 0).datetime(), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn an_offset_in_seconds_is_cut_to_minutes() {
        // Local mean time of Paris before 1911 was UTC+00:09:21.
        assert_eq!(at(0, 561).datetime(), "1970-01-01T00:09:00+00:09");
    }

    #[test]
    fn any_time_formats_without_panicking() {
        for ms in [0, 999, u64::MAX / 2, u64::MAX] {
            let t = LocalTime::of_unix_ms(ms);
            assert!(!t.datetime().is_empty() && !t.shown(&t).is_empty());
        }
        assert!(at(i64::MAX, 0).datetime().starts_with('2'));
        assert!(at(i64::MIN / 2, -3_600).datetime().starts_with('-'));
    }

    #[test]
    fn the_server_zone_gives_a_whole_minute_offset_within_a_day() {
        let t = LocalTime::now();
        assert_eq!(t.offset % 60, 0);
        assert!(t.offset.abs() < 86_400);
        // Read back through the same formatting, the local clock is UTC plus the offset.
        let secs = (unix_ms(SystemTime::now()) / 1_000) as i64;
        let offset = zone_offset(secs);
        assert_eq!(LocalTime::of_unix_ms(secs as u64 * 1_000), at(secs, offset));
    }
}
