//! Wall-clock time: epoch milliseconds and JavaScript-style ISO timestamps
//! and durations. WASI 0.2 gives components a wall clock through std, so
//! [`std::time::SystemTime`] works inside the sandbox as on the host.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The current time as JavaScript's `new Date().toISOString()` prints it.
pub fn now_iso() -> String {
    iso8601(now_ms())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) for epoch milliseconds, as JavaScript's
/// `toISOString` prints it.
pub fn iso8601(epoch_ms: u64) -> String {
    let ms = epoch_ms % 1000;
    let secs = epoch_ms / 1000;
    let (hh, mm, ss) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
}

/// Epoch milliseconds of an ISO 8601 UTC timestamp as the gateway and
/// JavaScript print them (`2026-11-25T23:11:06.988Z`; fraction optional,
/// `Z` or `+00:00`); `None` for anything else.
pub fn parse_iso8601(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, time) = text.split_once('T')?;
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ms = format!("{frac:0<3}")[..3].parse::<u64>().ok()?;
    let days = days_from_civil(y, m as u32, day as u32);
    if days < 0 {
        return None;
    }
    Some(((days as u64 * 86_400) + hh * 3600 + mm * 60 + ss) * 1000 + ms)
}

/// An ISO 8601 duration for whole seconds, as `PT12M5S`: hours, minutes
/// and seconds, zero parts left out, `PT0S` for zero.
pub fn iso_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if s > 0 || (h == 0 && m == 0) {
        out.push_str(&format!("{s}S"));
    }
    out
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_like_javascript() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        // new Date(1795648370000).toISOString()
        assert_eq!(iso8601(1_795_648_370_000), "2026-11-25T23:12:50.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn parse_round_trips() {
        for ms in [
            0,
            1_795_648_370_000,
            951_782_400_123,
            4_107_542_399_999,
            1_795_648_266_988,
        ] {
            assert_eq!(parse_iso8601(&iso8601(ms)), Some(ms));
        }
        assert_eq!(
            parse_iso8601("2026-11-25T23:11:06Z"),
            Some(1_795_648_266_000)
        );
        assert_eq!(
            parse_iso8601("2026-11-25T23:11:06.9+00:00"),
            Some(1_795_648_266_900)
        );
        for bad in [
            "",
            "2026-11-25",
            "2026-13-01T00:00:00Z",
            "2026-11-25T23:11:06",
            "x-y-zTa:b:cZ",
            "2026-11-25T23:11:06.x1Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(iso_duration(0), "PT0S");
        assert_eq!(iso_duration(123), "PT2M3S");
        assert_eq!(iso_duration(725), "PT12M5S");
        assert_eq!(iso_duration(3600), "PT1H");
        assert_eq!(iso_duration(90_061), "PT25H1M1S");
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ms() > 1_704_067_200_000);
        assert!(now_iso().ends_with('Z'));
    }
}
