//! Value patterns: exact strings, `*` wildcards (any run of characters,
//! anywhere, several times) and regular expressions.

use regex::Regex;

/// How a configured value matches a request value.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Any value, as long as it is present.
    Any,
    /// Exactly this value.
    Exact(String),
    /// `*` stands for any run of characters (including none).
    Wildcard(String),
    /// A regular expression, anchored at both ends.
    Regex(Regex),
}

/// How specific a matched condition is: exact beats pattern beats presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Specificity {
    /// Presence only.
    Any,
    /// A wildcard, prefix, glob or regex, refined by its literal length.
    Pattern(usize),
    /// An exact value.
    Exact,
}

impl Pattern {
    /// `*` alone is [`Pattern::Any`], text with `*` a wildcard, else exact.
    pub fn from_glob(text: &str) -> Self {
        match text {
            "*" => Self::Any,
            t if t.contains('*') => Self::Wildcard(t.to_string()),
            t => Self::Exact(t.to_string()),
        }
    }

    /// A regex that must match the whole value.
    pub fn regex(expression: &str) -> Result<Self, String> {
        Regex::new(&format!("^(?:{expression})$"))
            .map(Self::Regex)
            .map_err(|error| format!("invalid regex: {error}"))
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(expected) => expected == value,
            Self::Wildcard(pattern) => wildcard_match(pattern, value),
            Self::Regex(regex) => regex.is_match(value),
        }
    }

    /// This pattern's rank among competing rules.
    pub fn specificity(&self) -> Specificity {
        match self {
            Self::Any => Specificity::Any,
            Self::Exact(_) => Specificity::Exact,
            Self::Wildcard(pattern) => Specificity::Pattern(pattern.replace('*', "").len()),
            Self::Regex(_) => Specificity::Pattern(0),
        }
    }
}

/// Matches `value` against `pattern`, where `*` matches any run of
/// characters. Linear in practice: the classic greedy match with one
/// backtrack point.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let (pattern, value) = (pattern.as_bytes(), value.as_bytes());
    let (mut p, mut v) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, v));
            p += 1;
        } else if p < pattern.len() && pattern[p] == value[v] {
            p += 1;
            v += 1;
        } else if let Some((star, matched_from)) = backtrack {
            p = star + 1;
            v = matched_from + 1;
            backtrack = Some((star, matched_from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards_anywhere_and_several_times() {
        assert!(wildcard_match("/api/*", "/api/orders/1"));
        assert!(wildcard_match("/api/*", "/api/"));
        assert!(!wildcard_match("/api/*", "/api"));
        assert!(wildcard_match("*.example.com", "a.b.example.com"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("**", ""));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
    }

    #[test]
    fn specificity_orders_exact_pattern_any() {
        assert!(Pattern::from_glob("x").specificity() > Pattern::from_glob("x*").specificity());
        assert!(Pattern::from_glob("x*").specificity() > Pattern::from_glob("*").specificity());
        assert!(
            Pattern::from_glob("/api/auth/*").specificity()
                > Pattern::from_glob("/api/*").specificity()
        );
    }

    #[test]
    fn regex_is_anchored() {
        let pattern = Pattern::regex("curl/.*").unwrap();
        assert!(pattern.matches("curl/8.1"));
        assert!(!pattern.matches("xcurl/8.1"));
        assert!(Pattern::regex("(").unwrap_err().contains("invalid regex"));
    }

    fn regex_of_glob(glob: &str) -> Regex {
        let escaped: Vec<String> = glob.split('*').map(regex::escape).collect();
        Regex::new(&format!("^{}$", escaped.join(".*"))).unwrap()
    }

    proptest! {
        #[test]
        fn wildcard_agrees_with_the_equivalent_regex(
            glob in "[ab*]{0,8}",
            value in "[ab]{0,12}",
        ) {
            prop_assert_eq!(wildcard_match(&glob, &value), regex_of_glob(&glob).is_match(&value));
        }
    }
}
