//! Rates (`10/m`, `100/5m`, `1000/hour`) and durations (`30s`, `5m`).

use std::fmt;
use std::time::Duration;

/// `count` hits per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Hits per period; 0 blocks every request.
    pub count: u64,
    /// The window or refill period.
    pub period: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.period))
    }
}

/// Parses `N/period`: `10/s`, `100/5m`, `1000/h`, `5/30s`, `10/minute`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let (count, period) = text
        .split_once('/')
        .ok_or_else(|| "a rate is `N/period`, e.g. `10/m`, `100/5m`, `1000/hour`".to_string())?;
    let count = count
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("`{}` is not a whole number of hits", count.trim()))?;
    let period = parse_duration(period.trim())?;
    if period.is_zero() {
        return Err(format!("`{}` is not a usable period", period_text(text)));
    }
    Ok(Rate { count, period })
}

/// Parses a duration: an optional whole multiplier and a unit (`ms`, `s`,
/// `m`, `h`, `d` or their long names): `30s`, `5m`, `minute`, `2 hours`,
/// `0s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier = if number.is_empty() {
        1
    } else {
        number
            .parse::<u64>()
            .map_err(|_| format!("`{number}` is not a whole number"))?
    };
    let unit_millis: u64 = match unit.trim() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "" => return Err(format!("`{text}` has no unit (ms, s, m, h or d)")),
        other => return Err(format!("`{other}` is not a unit (ms, s, m, h or d)")),
    };
    let millis = multiplier
        .checked_mul(unit_millis)
        .ok_or_else(|| format!("`{text}` is too long"))?;
    Ok(Duration::from_millis(millis))
}

fn period_text(rate: &str) -> &str {
    rate.split_once('/')
        .map_or(rate, |(_, period)| period.trim())
}

fn format_duration(period: Duration) -> String {
    let millis = period.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis % size == 0 {
            return match millis / size {
                1 => unit.to_string(),
                n => format!("{n}{unit}"),
            };
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u64, secs: u64) -> Rate {
        Rate {
            count,
            period: Duration::from_secs(secs),
        }
    }

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(parse_rate("10/s").unwrap(), rate(10, 1));
        assert_eq!(parse_rate("10/m").unwrap(), rate(10, 60));
        assert_eq!(parse_rate("1000/h").unwrap(), rate(1000, 3600));
        assert_eq!(parse_rate("5/d").unwrap(), rate(5, 86_400));
        assert_eq!(parse_rate("100/5m").unwrap(), rate(100, 300));
        assert_eq!(parse_rate("10/30s").unwrap(), rate(10, 30));
        assert_eq!(parse_rate("7/second").unwrap(), rate(7, 1));
        assert_eq!(parse_rate("7/minute").unwrap(), rate(7, 60));
        assert_eq!(parse_rate("7/hour").unwrap(), rate(7, 3600));
        assert_eq!(parse_rate("7/day").unwrap(), rate(7, 86_400));
        assert_eq!(parse_rate("7/2 hours").unwrap(), rate(7, 7200));
        assert_eq!(parse_rate("0/m").unwrap(), rate(0, 60));
        assert_eq!(
            parse_rate("1/250ms").unwrap().period,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn rejects_with_a_reason() {
        assert!(parse_rate("10").unwrap_err().contains("N/period"));
        assert!(parse_rate("ten/m").unwrap_err().contains("`ten`"));
        assert!(parse_rate("10/x")
            .unwrap_err()
            .contains("`x` is not a unit"));
        assert!(parse_rate("10/0m")
            .unwrap_err()
            .contains("not a usable period"));
        assert!(parse_rate("-1/m").unwrap_err().contains("`-1`"));
        assert!(parse_rate("10/5").unwrap_err().contains("no unit"));
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(parse_rate("100/5m").unwrap().to_string(), "100/5m");
        assert_eq!(parse_rate("10/s").unwrap().to_string(), "10/s");
        assert_eq!(parse_rate("1/250ms").unwrap().to_string(), "1/250ms");
    }
}
