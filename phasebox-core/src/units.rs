//! Durations and sizes as people type them (`500ms`, `30s`, `1h 30m`, `8M`), parsed without
//! ever overflowing: a value too large is an error that says so.
use std::time::Duration;

/// The longest duration phasebox accepts anywhere (a year): longer ones are typos, and a
/// deadline `now + d` must stay representable.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration or size that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("duration {0:?} is not a number with a unit (for example 500ms, 30s, 5m, 1h)")]
    BadDuration(String),
    #[error("duration {0:?} must be greater than zero")]
    ZeroDuration(String),
    #[error("duration {0:?} is too long: the limit is one year")]
    LongDuration(String),
    #[error("size {0:?} is not a number with an optional K, M or G suffix")]
    BadSize(String),
    #[error("size {0:?} is too large")]
    LargeSize(String),
}

/// Parses durations such as `500ms`, `30s`, `5m`, `1h 30m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let t = s.trim();
    let d = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = t
            .parse()
            .map_err(|_| UnitError::LongDuration(s.to_string()))?;
        Duration::from_secs(secs)
    } else {
        humantime::parse_duration(t).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => UnitError::LongDuration(s.to_string()),
            _ => UnitError::BadDuration(s.to_string()),
        })?
    };
    if d.is_zero() {
        return Err(UnitError::ZeroDuration(s.to_string()));
    }
    if d > MAX_DURATION {
        return Err(UnitError::LongDuration(s.to_string()));
    }
    Ok(d)
}

/// Parses sizes such as `4096`, `64K`, `8M`, `1G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(UnitError::BadSize(s.to_string())),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UnitError::BadSize(s.to_string()));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| UnitError::LargeSize(s.to_string()))?;
    n.checked_mul(mult)
        .ok_or_else(|| UnitError::LargeSize(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(matches!(
            parse_duration("0s"),
            Err(UnitError::ZeroDuration(_))
        ));
        assert!(matches!(
            parse_duration("soon"),
            Err(UnitError::BadDuration(_))
        ));
        // Far too long: an error, never an overflow.
        for s in [
            "99999999999999999999s",
            "99999999999999999999",
            "18446744073709551615h",
            "400d",
        ] {
            assert!(
                matches!(parse_duration(s), Err(UnitError::LongDuration(_))),
                "{s}: {:?}",
                parse_duration(s)
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(matches!(parse_size("8X"), Err(UnitError::BadSize(_))));
        assert!(matches!(parse_size("-1"), Err(UnitError::BadSize(_))));
        assert!(matches!(parse_size("K"), Err(UnitError::BadSize(_))));
        assert!(matches!(
            parse_size("99999999999999999999G"),
            Err(UnitError::LargeSize(_))
        ));
        assert!(matches!(
            parse_size("17179869184G"),
            Err(UnitError::LargeSize(_))
        ));
    }
}
