//! Validation of `RateLimitRequest`s: INVALID_ARGUMENT naming the field,
//! with the caps of `settings.request`; each descriptor's `limit` override
//! read into a unit.

use crate::api::fields::{check_count, check_length, invalid};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ratelimitd_policy::{RequestCaps, Unit};
use tonic::Status;

/// Checks the request's shape; returns each descriptor's limit override.
pub(super) fn validate(
    request: &RateLimitRequest,
    caps: &RequestCaps,
) -> Result<Vec<Option<(u32, Unit)>>, Status> {
    if request.domain.is_empty() {
        return Err(invalid("domain", "must not be empty"));
    }
    check_length("domain", &request.domain, caps)?;
    if request.descriptors.is_empty() {
        return Err(invalid("descriptors", "must not be empty"));
    }
    check_count(
        "descriptors",
        "descriptors",
        request.descriptors.len(),
        caps.max_descriptors,
    )?;
    if u64::from(request.hits_addend) > caps.max_cost {
        return Err(invalid(
            "hits_addend",
            format!("{}, at most {} allowed", request.hits_addend, caps.max_cost),
        ));
    }
    request
        .descriptors
        .iter()
        .enumerate()
        .map(|(index, descriptor)| {
            check_count(
                format_args!("descriptors[{index}].entries"),
                "entries",
                descriptor.entries.len(),
                caps.max_descriptors,
            )?;
            for (position, entry) in descriptor.entries.iter().enumerate() {
                check_length(
                    format_args!("descriptors[{index}].entries[{position}].key"),
                    &entry.key,
                    caps,
                )?;
                check_length(
                    format_args!("descriptors[{index}].entries[{position}].value"),
                    &entry.value,
                    caps,
                )?;
            }
            if let Some(hits) = &descriptor.hits_addend {
                if hits.value > caps.max_cost {
                    return Err(invalid(
                        format_args!("descriptors[{index}].hits_addend"),
                        format!("{}, at most {} allowed", hits.value, caps.max_cost),
                    ));
                }
            }
            if descriptor.is_negative_hits {
                return Err(invalid(
                    format_args!("descriptors[{index}].is_negative_hits"),
                    "returning hits is not supported",
                ));
            }
            descriptor
                .limit
                .as_ref()
                .map(|limit| {
                    unit_of(limit.unit)
                        .map(|unit| (limit.requests_per_unit, unit))
                        .ok_or_else(|| {
                            invalid(
                                format_args!("descriptors[{index}].limit.unit"),
                                format!("{} is not a time unit", limit.unit),
                            )
                        })
                })
                .transpose()
        })
        .collect()
}

fn unit_of(value: i32) -> Option<Unit> {
    Some(match ProtoUnit::try_from(value).ok()? {
        ProtoUnit::Unknown => return None,
        ProtoUnit::Second => Unit::Second,
        ProtoUnit::Minute => Unit::Minute,
        ProtoUnit::Hour => Unit::Hour,
        ProtoUnit::Day => Unit::Day,
        ProtoUnit::Week => Unit::Week,
        ProtoUnit::Month => Unit::Month,
        ProtoUnit::Year => Unit::Year,
    })
}
