//! Deleting the counters of a request's checks (`Admin/Reset`): each
//! backend's keys in one engine call (backends in parallel), and, for
//! checks that fail locally, the local fallback store's counters too (a
//! client denied there while its backend was down is unblocked as well).

use super::{by_backend, Routed};
use crate::backends::Backends;
use ratelimitd_engine::StoreError;
use ratelimitd_policy::FailurePolicy;

/// Deletes every routed check's counter; per check, in order, whether a
/// live counter was deleted (in its backend or the local fallback store).
/// Every backend is tried; the first one's error is returned.
pub async fn reset(backends: &Backends, routed: &[Routed<'_>]) -> Result<Vec<bool>, StoreError> {
    let engine = &backends.engine;
    let groups = by_backend(routed);
    let results = futures_util::future::join_all(groups.iter().map(|(backend, members)| {
        let keys: Vec<&str> = members.iter().map(|&i| routed[i].check.key).collect();
        async move { engine.reset_on(*backend, &keys).await }
    }))
    .await;

    let local: Vec<usize> = (0..routed.len())
        .filter(|&i| routed[i].failure_policy == FailurePolicy::Local)
        .collect();
    let local_keys: Vec<&str> = local.iter().map(|&i| routed[i].check.key).collect();
    let mut deleted = vec![false; routed.len()];
    let local_deleted = backends.local_fallback.reset_at(&local_keys, engine.now());
    for (&member, held) in local.iter().zip(local_deleted) {
        deleted[member] = held;
    }
    let mut failure = None;
    for ((_, members), result) in groups.iter().zip(results) {
        match result {
            Ok(held) => {
                for (&member, held) in members.iter().zip(held) {
                    deleted[member] |= held;
                }
            }
            Err(error) => {
                failure.get_or_insert(error);
            }
        }
    }
    failure.map_or(Ok(deleted), Err)
}
