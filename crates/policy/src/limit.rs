//! What a limit is once compiled ([`LimitSpec`]), and the checks its
//! parameters must pass against its algorithm, shared by the policy file's
//! limits, the limits callers declare and the operator's overrides.

use crate::document::Algorithm;
use crate::rate::Rate;

/// Index of a limit in [`Policy::limits`].
pub type LimitId = usize;

/// One configured limit, as the engine will enforce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// Index in [`Policy::limits`].
    pub id: LimitId,
    /// Name within its rule (`default` for the `rate:` shorthand): part of
    /// the counter key, and of metrics and errors.
    pub name: String,
    /// Hits per period; 0 blocks.
    pub rate: Rate,
    /// How hits are counted against the rate: the algorithms differ in how
    /// bursty the admitted traffic may be, and in memory per key.
    pub algorithm: Algorithm,
    /// Token bucket capacity or GCRA burst (the rate's count unless set).
    pub burst: u64,
    /// Token bucket initial tokens (the burst unless set).
    pub initial_tokens: u64,
    /// Count denied hits too.
    pub count_denied: bool,
    /// Where it is declared, e.g. `rules[1].limits[0]`, for errors.
    pub path: String,
}

impl LimitSpec {
    /// This limit's share on one of `replicas` replicas deciding alone: what
    /// the `local` failure policy enforces in each replica's in-process
    /// store while the shared backend is down, so that together the
    /// replicas admit about the limit. The rate's count, the burst and the
    /// initial tokens are divided rounding up, so a positive limit stays
    /// positive (and a rate of 0 still blocks); the initial tokens stay
    /// within the burst. `replicas` of 0 counts as 1 (the policy never
    /// holds 0: `settings.local_replicas` is at least 1).
    pub fn local_share(&self, replicas: u64) -> LimitSpec {
        let share = |n: u64| n.div_ceil(replicas.max(1));
        let mut local = self.clone();
        local.rate.count = share(self.rate.count);
        local.burst = share(self.burst);
        local.initial_tokens = share(self.initial_tokens).min(local.burst);
        local
    }
}

/// A limit's parameters as written (in a file, in a request, in an
/// override), before they are checked against its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitParameters {
    pub rate: Rate,
    pub algorithm: Algorithm,
    pub burst: Option<u64>,
    pub initial_tokens: Option<u64>,
    pub count_denied: bool,
}

/// One problem with a limit's parameters: the field, the value shown, and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParameterProblem {
    pub field: &'static str,
    pub value: String,
    pub message: String,
}

impl LimitParameters {
    /// The limit these parameters make (named `name`, declared at `path`),
    /// or every problem with them: a parameter its algorithm does not take,
    /// a burst of 0, initial tokens beyond the burst.
    pub fn spec(&self, name: &str, path: String) -> Result<LimitSpec, Vec<ParameterProblem>> {
        let algorithm = self.algorithm;
        let burst = self.burst.unwrap_or(self.rate.count);
        let initial_tokens = self.initial_tokens.unwrap_or(burst);
        let mut problems = Vec::new();
        let mut problem = |field: &'static str, value: String, message: String| {
            problems.push(ParameterProblem {
                field,
                value,
                message,
            })
        };
        if self.burst.is_some() && !matches!(algorithm, Algorithm::TokenBucket | Algorithm::Gcra) {
            problem(
                "burst",
                burst.to_string(),
                "burst applies to token_bucket and gcra only".into(),
            );
        }
        if self.burst == Some(0) && self.rate.count > 0 {
            problem(
                "burst",
                "0".into(),
                "a burst of 0 admits nothing: use a rate of 0 to block".into(),
            );
        }
        if self.initial_tokens.is_some() && algorithm != Algorithm::TokenBucket {
            problem(
                "initial_tokens",
                initial_tokens.to_string(),
                "initial_tokens applies to token_bucket only".into(),
            );
        } else if initial_tokens > burst {
            problem(
                "initial_tokens",
                initial_tokens.to_string(),
                format!("initial_tokens exceed the bucket's capacity ({burst})"),
            );
        }
        if self.count_denied
            && !matches!(algorithm, Algorithm::FixedWindow | Algorithm::SlidingWindow)
        {
            problem(
                "count_denied",
                "true".into(),
                "count_denied applies to fixed_window and sliding_window only".into(),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(LimitSpec {
            id: 0,
            name: name.to_string(),
            rate: self.rate,
            algorithm,
            burst,
            initial_tokens,
            count_denied: self.count_denied,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(count: u64, burst: u64, initial_tokens: u64) -> LimitSpec {
        LimitSpec {
            id: 3,
            name: "default".into(),
            rate: Rate {
                count,
                period: Duration::from_secs(60),
            },
            algorithm: Algorithm::TokenBucket,
            burst,
            initial_tokens,
            count_denied: false,
            path: "rules[0].rate".into(),
        }
    }

    /// `(count, burst, initial tokens)` of a local share.
    fn shared(spec: LimitSpec, replicas: u64) -> (u64, u64, u64) {
        let local = spec.local_share(replicas);
        (local.rate.count, local.burst, local.initial_tokens)
    }

    #[test]
    fn a_local_share_divides_rounding_up_and_keeps_everything_else() {
        let whole = spec(100, 30, 10);
        let expected = LimitSpec {
            rate: Rate {
                count: 34,
                ..whole.rate
            },
            burst: 10,
            initial_tokens: 4,
            ..whole.clone()
        };
        assert_eq!(whole.local_share(3), expected);
    }

    #[test]
    fn a_positive_limit_stays_positive_and_zero_still_blocks() {
        assert_eq!(shared(spec(1, 1, 1), 5), (1, 1, 1));
        assert_eq!(shared(spec(0, 0, 0), 5), (0, 0, 0));
    }

    #[test]
    fn initial_tokens_stay_within_the_divided_burst() {
        assert_eq!(shared(spec(8, 3, 3), 4), (2, 1, 1));
        // Even from a limit no file can declare (initial above the burst).
        assert_eq!(shared(spec(8, 3, 5), 4), (2, 1, 1));
    }

    #[test]
    fn one_replica_or_none_is_the_whole_limit() {
        assert_eq!(spec(100, 30, 10).local_share(1), spec(100, 30, 10));
        assert_eq!(spec(100, 30, 10).local_share(0), spec(100, 30, 10));
    }
}
