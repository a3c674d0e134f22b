//! The time units of envoyproxy/ratelimit files and of RLS v3.

use std::time::Duration;

/// A rate limit unit, as in `unit: minute` or a request's limit override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// 1 s.
    Second,
    /// 60 s.
    Minute,
    /// 3600 s.
    Hour,
    /// 86,400 s.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
    /// 365 days.
    Year,
}

impl Unit {
    /// Every unit with its name in files (matched case-insensitively).
    pub const NAMES: [(&'static str, Self); 7] = [
        ("second", Self::Second),
        ("minute", Self::Minute),
        ("hour", Self::Hour),
        ("day", Self::Day),
        ("week", Self::Week),
        ("month", Self::Month),
        ("year", Self::Year),
    ];

    /// The unit named `name`, in any letter case (`minute`, `MINUTE`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, unit)| unit)
    }

    /// The unit's length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
            Self::Week => 7 * 86_400,
            Self::Month => 30 * 86_400,
            Self::Year => 365 * 86_400,
        }
    }

    /// The unit's length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.seconds())
    }

    /// The unit exactly `period` long, if there is one.
    pub fn of_period(period: Duration) -> Option<Self> {
        Self::NAMES
            .iter()
            .map(|&(_, unit)| unit)
            .find(|unit| unit.duration() == period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_lengths_match_the_reference() {
        assert_eq!(Unit::from_name("MINUTE"), Some(Unit::Minute));
        assert_eq!(Unit::from_name("Week"), Some(Unit::Week));
        assert_eq!(Unit::from_name("fortnight"), None);
        assert_eq!(Unit::Month.seconds(), 2_592_000);
        assert_eq!(Unit::Year.seconds(), 31_536_000);
        assert_eq!(Unit::of_period(Duration::from_secs(3600)), Some(Unit::Hour));
        assert_eq!(Unit::of_period(Duration::from_secs(300)), None);
    }
}
