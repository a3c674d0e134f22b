//! Validation of `CheckLimitRequest`s (INVALID_ARGUMENT naming the field,
//! caps from `settings.request`), the client's address resolved (`client_ip`,
//! else `peer_ip` through `forwarded_for`), and their view as policy
//! [`Attributes`].

use crate::api::client_ip::client_ip;
use crate::api::fields::{check_count, check_length, invalid};
use ratelimitd_policy::{
    Algorithm as PolicyAlgorithm, Attributes, Declared, RequestCaps, Settings,
};
use ratelimitd_proto::v1::limit_status::Algorithm;
use ratelimitd_proto::v1::CheckLimitRequest;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use tonic::Status;

/// A request that passed validation.
pub struct ValidRequest<'r> {
    request: &'r CheckLimitRequest,
    client_ip: Option<IpAddr>,
    /// Headers by lower-case name (borrowed when already lower case).
    headers: Cow<'r, HashMap<String, String>>,
    /// Hits to consume (absent: 1).
    pub cost: u64,
    /// The limits the request declares, read for the policy's gate.
    pub declared: Vec<Declared<'r>>,
}

impl<'r> ValidRequest<'r> {
    /// Validates `request` against `settings` (its caps and trusted
    /// proxies).
    pub fn new(request: &'r CheckLimitRequest, settings: &Settings) -> Result<Self, Status> {
        let caps = &settings.caps;
        if request.domain.is_empty() {
            return Err(invalid("domain", "must not be empty"));
        }
        check_length("domain", &request.domain, caps)?;
        check_count(
            "descriptors",
            "entries",
            request.descriptors.len(),
            caps.max_descriptors,
        )?;
        for (index, entry) in request.descriptors.iter().enumerate() {
            if entry.key.is_empty() {
                return Err(invalid(
                    format_args!("descriptors[{index}].key"),
                    "must not be empty",
                ));
            }
            check_length(format_args!("descriptors[{index}].key"), &entry.key, caps)?;
            check_length(
                format_args!("descriptors[{index}].value"),
                &entry.value,
                caps,
            )?;
        }
        check_count(
            "headers",
            "headers",
            request.headers.len(),
            caps.max_headers,
        )?;
        for (name, value) in &request.headers {
            if name.is_empty() {
                return Err(invalid("headers", "a header name must not be empty"));
            }
            check_length(format_args!("headers[{name:?}]"), name, caps)?;
            check_length(format_args!("headers[{name:?}]"), value, caps)?;
        }
        for (field, value) in [
            ("user", &request.user),
            ("api_key", &request.api_key),
            ("method", &request.method),
            ("path", &request.path),
            ("client_ip", &request.client_ip),
            ("peer_ip", &request.peer_ip),
            ("forwarded_for", &request.forwarded_for),
        ] {
            check_length(field, value, caps)?;
        }
        // An address already resolved wins; else the peer, through the
        // trusted proxies of its X-Forwarded-For.
        let client_ip = match address("client_ip", &request.client_ip)? {
            Some(ip) => Some(ip),
            None => client_ip(
                address("peer_ip", &request.peer_ip)?,
                Some(&request.forwarded_for),
                &settings.trusted_proxies,
            ),
        };
        let cost = u64::from(request.cost.unwrap_or(1));
        if cost > caps.max_cost {
            return Err(invalid(
                "cost",
                format!("{cost} exceeds the maximum of {}", caps.max_cost),
            ));
        }
        let headers = if request
            .headers
            .keys()
            .any(|name| name.bytes().any(|b| b.is_ascii_uppercase()))
        {
            Cow::Owned(
                request
                    .headers
                    .iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                    .collect(),
            )
        } else {
            Cow::Borrowed(&request.headers)
        };
        Ok(Self {
            request,
            client_ip,
            headers,
            cost,
            declared: declared(request, caps)?,
        })
    }
}

/// The declared limits, their text within the caps; the policy's gate
/// checks the rest.
fn declared<'r>(
    request: &'r CheckLimitRequest,
    caps: &RequestCaps,
) -> Result<Vec<Declared<'r>>, Status> {
    request
        .limits
        .iter()
        .enumerate()
        .map(|(index, limit)| {
            check_length(format_args!("limits[{index}].name"), &limit.name, caps)?;
            check_length(format_args!("limits[{index}].rate"), &limit.rate, caps)?;
            check_count(
                format_args!("limits[{index}].key"),
                "parts",
                limit.key.len(),
                caps.max_descriptors,
            )?;
            for (position, part) in limit.key.iter().enumerate() {
                check_length(format_args!("limits[{index}].key[{position}]"), part, caps)?;
            }
            let algorithm = match limit.algorithm() {
                Algorithm::Unspecified => None,
                Algorithm::FixedWindow => Some(PolicyAlgorithm::FixedWindow),
                Algorithm::SlidingWindow => Some(PolicyAlgorithm::SlidingWindow),
                Algorithm::SlidingLog => Some(PolicyAlgorithm::SlidingLog),
                Algorithm::TokenBucket => Some(PolicyAlgorithm::TokenBucket),
                Algorithm::Gcra => Some(PolicyAlgorithm::Gcra),
            };
            Ok(Declared {
                name: &limit.name,
                key: &limit.key,
                rate: &limit.rate,
                algorithm,
                burst: (limit.burst > 0).then_some(limit.burst),
                initial_tokens: limit.initial_tokens,
                count_denied: limit.count_denied,
                shadow: limit.shadow,
            })
        })
        .collect()
}

/// The address in `field`, if any; an unparsable one is INVALID_ARGUMENT.
fn address(field: &str, text: &str) -> Result<Option<IpAddr>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| invalid(field, format!("{text:?} is not an IPv4 or IPv6 address")))
}

fn present(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

impl Attributes for ValidRequest<'_> {
    fn domain(&self) -> &str {
        &self.request.domain
    }
    fn descriptor(&self, key: &str) -> Option<&str> {
        self.request
            .descriptors
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
    fn user(&self) -> Option<&str> {
        present(&self.request.user)
    }
    fn api_key(&self) -> Option<&str> {
        present(&self.request.api_key)
    }
    fn method(&self) -> Option<&str> {
        present(&self.request.method)
    }
    fn path(&self) -> Option<&str> {
        present(&self.request.path)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}
