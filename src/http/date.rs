//! The `Date` header every response carries (RFC 9110 §6.6.1: a server with a clock sends
//! it), in IMF-fixdate: `Date: Sun, 06 Nov 1994 08:49:37 GMT`.
//!
//! Each loop keeps the whole header line pre-rendered ([`Date`]) and renders it again at
//! most once a second: once a turn the loop's one monotonic reading is compared with the
//! reading at which the wall-clock second next changes, and only when that moment has come
//! is the wall clock read and the line rendered. The moment is taken from the wall clock at
//! each refresh, so a step of the wall clock (NTP, an operator) shows within a second. The
//! calendar conversion is written here (a few lines, tested against known dates) rather
//! than taken from a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::Nanos;

/// Length of the header line: `Date: ` + 29 bytes of IMF-fixdate + CRLF.
pub const LINE_LEN: usize = 37;

/// The last second IMF-fixdate can write (four-digit years): 9999-12-31T23:59:59Z.
const LAST_SECOND: u64 = 253_402_300_799;

const NANOS_PER_SEC: Nanos = 1_000_000_000;

/// One loop's `Date` header line, rendered again when the wall-clock second changes.
#[derive(Debug, Clone)]
pub struct Date {
    line: [u8; LINE_LEN],
    /// The loop's clock reading from which the line is out of date.
    stale_at: Nanos,
}

impl Default for Date {
    fn default() -> Date {
        Date::new()
    }
}

impl Date {
    /// The line for the current wall-clock time, refreshed at the first [`Date::refresh`].
    pub fn new() -> Date {
        let mut line = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
        line[6..35].copy_from_slice(&imf_fixdate(unix_now().0));
        Date { line, stale_at: 0 }
    }

    /// Brings the line up to date for the loop's clock reading `now` (once per turn): one
    /// comparison, unless the wall-clock second has changed since the last rendering.
    #[inline]
    pub fn refresh(&mut self, now: Nanos) {
        if now >= self.stale_at {
            self.render(now);
        }
    }

    #[cold]
    #[inline(never)]
    fn render(&mut self, now: Nanos) {
        let (secs, subsec) = unix_now();
        self.line[6..35].copy_from_slice(&imf_fixdate(secs));
        self.stale_at = now.saturating_add(NANOS_PER_SEC - Nanos::from(subsec));
    }

    /// `Date: <IMF-fixdate>\r\n`.
    #[inline]
    pub fn line(&self) -> &[u8; LINE_LEN] {
        &self.line
    }
}

/// Seconds and nanoseconds since the Unix epoch by the wall clock (0 before 1970).
fn unix_now() -> (u64, u32) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_secs(), since.subsec_nanos())
}

/// `secs` seconds since the Unix epoch as IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`
/// (times past the year 9999 are written as its last second).
pub fn imf_fixdate(secs: u64) -> [u8; 29] {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = secs.min(LAST_SECOND);
    let (days, in_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday, the first of WEEKDAYS.
    out[0..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    out[5..7].copy_from_slice(&two_digits(day));
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    out[12..14].copy_from_slice(&two_digits((year / 100) as u32));
    out[14..16].copy_from_slice(&two_digits((year % 100) as u32));
    out[17..19].copy_from_slice(&two_digits((in_day / 3_600) as u32));
    out[20..22].copy_from_slice(&two_digits((in_day / 60 % 60) as u32));
    out[23..25].copy_from_slice(&two_digits((in_day % 60) as u32));
    out
}

fn two_digits(n: u32) -> [u8; 2] {
    debug_assert!(n < 100, "{n}");
    [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]
}

/// The proleptic Gregorian date (year, month 1-12, day 1-31) of `days` days after
/// 1970-01-01 (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
///
/// Years are counted from March, so that the leap day is the last day of a year: 400-year
/// eras of 146097 days, then the year of the era (a 365-day year, less a day every 4
/// years, plus one every 100, less one every 400), then the month from the day of a
/// March-based year, where months follow a 153-days-per-5-months pattern.
pub fn civil_from_days(days: u64) -> (u64, u32, u32) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64) -> String {
        String::from_utf8(imf_fixdate(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_dates_leap_days_and_century_years() {
        for (secs, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"), // RFC 9110's example
            (68_212_800, "Tue, 29 Feb 1972 12:00:00 GMT"),
            (946_684_799, "Fri, 31 Dec 1999 23:59:59 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"), // 2000: divisible by 400
            (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 GMT"),
            (2_147_483_648, "Tue, 19 Jan 2038 03:14:08 GMT"), // past i32 seconds
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"), // 2100: no 29 February
            (13_574_563_200, "Tue, 29 Feb 2400 00:00:00 GMT"),
            (LAST_SECOND, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(text(secs), want, "{secs}");
        }
    }

    #[test]
    fn civil_from_days_agrees_with_counting_days_one_by_one() {
        let leap =
            |y: u64| y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
        let (mut y, mut m, mut d) = (1970u64, 1u32, 1u32);
        // Every day from 1970 to 2517: 2000 and 2400 are leap years, 2100, 2200, 2300 and 2500 not.
        for days in 0..200_000u64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }

    #[test]
    fn the_line_is_rendered_again_once_the_second_is_over() {
        let mut date = Date::new();
        assert!(date.line().starts_with(b"Date: ") && date.line().ends_with(b" GMT\r\n"));
        // A clock reading of 0 is before any refresh: the first one renders.
        date.refresh(0);
        let due = date.stale_at;
        assert!((1..=NANOS_PER_SEC).contains(&due), "{due}");
        // Within the second nothing is read or rendered.
        date.line[6] = b'X';
        date.refresh(due - 1);
        assert_eq!(date.line()[6], b'X');
        date.refresh(due);
        assert_ne!(date.line()[6], b'X');
        assert!(date.stale_at > due);
    }
}
