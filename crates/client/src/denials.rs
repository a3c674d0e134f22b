//! The opt-in denial cache.

use crate::{Code, Decision, Source};
use prost::Message;
use ratelimitd_proto::v1::CheckLimitRequest;
use std::collections::HashMap;
use std::time::Instant;

/// Denials remembered at most: when full, expired ones are dropped, and a
/// new denial is not remembered if none had expired.
const MAX_ENTRIES: usize = 10_000;

/// Answers a request the service just denied, identical to the byte, until
/// its retry-after, without a call ([`Source::Cache`]): under attack the
/// same client repeats the same request. Opt-in: the client cannot know
/// whether a policy rule counts denied hits (`count_denied`), which such
/// repeats would then no longer feed; requests declaring such a limit are
/// never cached.
#[derive(Debug, Default)]
pub(crate) struct DenialCache {
    entries: HashMap<Vec<u8>, (Decision, Instant)>,
}

impl DenialCache {
    /// The cached denial of `request`, its wait shortened to what is left.
    pub fn get(&mut self, request: &CheckLimitRequest, now: Instant) -> Option<Decision> {
        let key = fingerprint(request);
        let (decision, until) = self.entries.get(&key)?;
        if *until <= now {
            self.entries.remove(&key);
            return None;
        }
        let mut decision = decision.clone();
        decision.source = Source::Cache;
        decision.retry_after = *until - now;
        Some(decision)
    }

    /// Remembers `decision` for `request` if it is a denial worth repeating.
    pub fn remember(&mut self, request: &CheckLimitRequest, decision: &Decision, now: Instant) {
        if decision.code != Code::OverLimit
            || decision.retry_after.is_zero()
            || request.limits.iter().any(|limit| limit.count_denied)
        {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        self.entries.insert(
            fingerprint(request),
            (decision.clone(), now + decision.retry_after),
        );
    }
}

/// The serialized request, its headers (a hash map: no order) sorted and
/// appended.
fn fingerprint(request: &CheckLimitRequest) -> Vec<u8> {
    let mut headers: Vec<_> = request.headers.iter().collect();
    headers.sort();
    let mut bytes = CheckLimitRequest {
        headers: Default::default(),
        ..request.clone()
    }
    .encode_to_vec();
    for (name, value) in headers {
        for field in [name, value] {
            bytes.extend_from_slice(&(field.len() as u64).to_le_bytes());
            bytes.extend_from_slice(field.as_bytes());
        }
    }
    bytes
}
