//! Spend periods with UTC boundaries, and the account keys of an instant.

/// The period of a spend cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
    /// Forever.
    Total,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    pub fn parse(text: &str) -> Option<Period> {
        Some(match text {
            "day" => Period::Day,
            "month" => Period::Month,
            "total" => Period::Total,
            _ => return None,
        })
    }

    /// The account key of this period at `ms` since the epoch:
    /// `day:2026-12-06`, `month:2026-12` or `total`.
    pub fn key(self, ms: i64) -> String {
        let [day, month, total] = period_keys(ms);
        match self {
            Period::Day => day,
            Period::Month => month,
            Period::Total => total,
        }
    }
}

/// The day, month and total keys at `ms` since the epoch (UTC). Every
/// reservation is booked on all three, so a cap's period can change without
/// losing history.
pub fn period_keys(ms: i64) -> [String; 3] {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    [format!("day:{y:04}-{m:02}-{d:02}"), format!("month:{y:04}-{m:02}"), "total".to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_boundaries() {
        // 2026-12-06T23:59:59.999Z and one millisecond later.
        let before = 1_796_601_599_999;
        assert_eq!(period_keys(before), ["day:2026-12-06", "month:2026-12", "total"]);
        assert_eq!(period_keys(before + 1), ["day:2026-12-07", "month:2026-12", "total"]);
        // 2026-12-31T23:59:59.999Z: the month turns too.
        assert_eq!(Period::Month.key(1_798_761_599_999), "month:2026-12");
        assert_eq!(Period::Month.key(1_798_761_600_000), "month:2027-01");
        assert_eq!(Period::parse("day"), Some(Period::Day));
        assert_eq!(Period::parse("week"), None);
    }
}
