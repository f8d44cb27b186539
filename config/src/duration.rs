//! Durations written the way operators write them: `500us`, `250ms`, `2s`, `1m`, `1h`.

use std::time::Duration;

/// Parse `<integer><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; write e.g. \"250ms\", \"2s\", \"1m\""))?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. \"250ms\", \"2s\", \"1m\""))?;
    let micros = match unit {
        "us" => Some(value),
        "ms" => value.checked_mul(1_000),
        "s" => value.checked_mul(1_000_000),
        "m" => value.checked_mul(60_000_000),
        "h" => value.checked_mul(3_600_000_000),
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use us, ms, s, m or h"
            ));
        }
    };
    micros
        .map(Duration::from_micros)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_understood() {
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn malformed_durations_say_why() {
        assert!(parse_duration("2").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("2 days")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("ms").unwrap_err().contains("not a duration"));
        assert!(
            parse_duration("99999999999999999h")
                .unwrap_err()
                .contains("too large")
        );
    }
}
