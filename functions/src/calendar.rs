//! Calendar arithmetic for timestamps verge writes itself (KVS metadata, access-log lines, AWS
//! signatures),
//! without a date library.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
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

/// Seconds since the epoch to UTC (year, month, day, hour, minute, second).
fn civil_time(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// Milliseconds since the epoch as ISO 8601 UTC with milliseconds.
pub fn iso8601_millis(millis: i64) -> String {
    let (y, m, d, h, mi, s) = civil_time(millis.div_euclid(1000));
    format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        millis.rem_euclid(1000)
    )
}

/// Seconds since the epoch in ISO 8601's basic UTC form, `YYYYMMDDTHHMMSSZ` (AWS's `x-amz-date`).
pub fn iso8601_basic(secs: i64) -> String {
    let (y, m, d, h, mi, s) = civil_time(secs);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_exactly() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_778), (2026, 11, 21));
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_basic(1_795_568_523), "20261125T010203Z");
        assert_eq!(
            iso8601_millis(1_795_251_601_250),
            "2026-11-21T09:00:01.250Z"
        );
    }
}
