//! Human durations in config files: `500ms`, `30s`, `5m`, `6h`, `7d`.

use std::time::Duration;

/// Parses a duration written as a number followed by a unit (`ms`, `s`, `m`, `h`, `d`).
///
/// A bare number is refused: a config that says `timeout = "30"` is ambiguous,
/// and guessing the unit is how timeouts end up a thousand times too long.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("\"{text}\" has no unit; write e.g. \"30s\", \"500ms\", \"5m\", \"6h\"")
    })?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| {
        format!("\"{text}\" does not start with a whole number; write e.g. \"30s\"")
    })?;
    let millis = match unit {
        "ms" => Some(value),
        "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "\"{text}\" has unknown unit \"{unit}\"; use ms, s, m, h or d"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// Formats a duration in the largest unit that represents it exactly.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86400)));
    }

    #[test]
    fn refuses_missing_or_unknown_units() {
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["500ms", "30s", "5m", "6h", "7d", "90s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(parsed)), Ok(parsed));
        }
    }
}
