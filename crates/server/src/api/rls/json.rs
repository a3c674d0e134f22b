//! The protobuf JSON form of RLS v3 requests and responses, as the reference
//! service's `POST /json` takes and gives them: lowerCamelCase names (the
//! proto names are accepted too), enums by name, 64-bit numbers as numbers
//! or strings, durations as `"60s"`, default values left out.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    descriptors: Vec<JsonDescriptor>,
    #[serde(default, alias = "hits_addend", rename = "hitsAddend")]
    hits_addend: Option<Number>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDescriptor {
    #[serde(default)]
    entries: Vec<JsonEntry>,
    #[serde(default)]
    limit: Option<JsonOverride>,
    #[serde(default, alias = "hits_addend", rename = "hitsAddend")]
    hits_addend: Option<Number>,
    #[serde(default, alias = "is_negative_hits", rename = "isNegativeHits")]
    is_negative_hits: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonOverride {
    #[serde(default, alias = "requests_per_unit", rename = "requestsPerUnit")]
    requests_per_unit: Option<Number>,
    #[serde(default)]
    unit: Option<UnitValue>,
}

/// A protobuf JSON integer: a number or a decimal string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Number(u64),
    Text(String),
}

/// A protobuf JSON enum: its name or its number.
#[derive(Deserialize)]
#[serde(untagged)]
enum UnitValue {
    Name(String),
    Number(i32),
}

impl Number {
    fn value(&self, field: &str) -> Result<u64, String> {
        match self {
            Self::Number(value) => Ok(*value),
            Self::Text(text) => text
                .parse()
                .map_err(|_| format!("{field}: `{text}` is not a whole number")),
        }
    }

    fn value_u32(&self, field: &str) -> Result<u32, String> {
        let value = self.value(field)?;
        u32::try_from(value).map_err(|_| format!("{field}: {value} is more than 4294967295"))
    }
}

/// Parses a JSON `RateLimitRequest`; the error names the bad field.
pub fn parse_request(body: &[u8]) -> Result<RateLimitRequest, String> {
    let request: JsonRequest =
        serde_json::from_slice(body).map_err(|error| format!("invalid request JSON: {error}"))?;
    let descriptors = request
        .descriptors
        .into_iter()
        .enumerate()
        .map(|(index, descriptor)| {
            let field = |name: &str| format!("descriptors[{index}].{name}");
            let limit = descriptor
                .limit
                .map(|limit| {
                    let unit = match limit.unit {
                        None => 0,
                        Some(UnitValue::Number(number)) => number,
                        Some(UnitValue::Name(name)) => {
                            Unit::from_str_name(&name).ok_or_else(|| {
                                format!("{}: unknown unit `{name}`", field("limit.unit"))
                            })? as i32
                        }
                    };
                    let requests_per_unit = match limit.requests_per_unit {
                        None => 0,
                        Some(number) => number.value_u32(&field("limit.requestsPerUnit"))?,
                    };
                    Ok::<_, String>(RateLimitOverride {
                        requests_per_unit,
                        unit,
                    })
                })
                .transpose()?;
            let hits_addend = descriptor
                .hits_addend
                .map(|hits| {
                    hits.value(&field("hitsAddend"))
                        .map(|value| UInt64Value { value })
                })
                .transpose()?;
            Ok(RateLimitDescriptor {
                entries: descriptor
                    .entries
                    .into_iter()
                    .map(|entry| Entry {
                        key: entry.key,
                        value: entry.value,
                    })
                    .collect(),
                limit,
                hits_addend,
                is_negative_hits: descriptor.is_negative_hits,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(RateLimitRequest {
        domain: request.domain,
        descriptors,
        hits_addend: match request.hits_addend {
            None => 0,
            Some(number) => number.value_u32("hitsAddend")?,
        },
    })
}

/// A `RateLimitResponse` as protobuf JSON.
pub fn response_json(response: &RateLimitResponse) -> Value {
    let mut out = Map::new();
    out.insert(
        "overallCode".into(),
        json!(code_name(response.overall_code)),
    );
    if !response.statuses.is_empty() {
        let statuses: Vec<Value> = response.statuses.iter().map(status_json).collect();
        out.insert("statuses".into(), Value::Array(statuses));
    }
    if !response.response_headers_to_add.is_empty() {
        let headers: Vec<Value> = response
            .response_headers_to_add
            .iter()
            .map(|header| json!({"key": header.key, "value": header.value}))
            .collect();
        out.insert("responseHeadersToAdd".into(), Value::Array(headers));
    }
    Value::Object(out)
}

fn status_json(status: &DescriptorStatus) -> Value {
    let mut out = Map::new();
    out.insert("code".into(), json!(code_name(status.code)));
    if let Some(limit) = &status.current_limit {
        let mut current = Map::new();
        if !limit.name.is_empty() {
            current.insert("name".into(), json!(limit.name));
        }
        if limit.requests_per_unit != 0 {
            current.insert("requestsPerUnit".into(), json!(limit.requests_per_unit));
        }
        let unit = Unit::try_from(limit.unit).unwrap_or(Unit::Unknown);
        if unit != Unit::Unknown {
            current.insert("unit".into(), json!(unit.as_str_name()));
        }
        out.insert("currentLimit".into(), Value::Object(current));
    }
    if status.limit_remaining != 0 {
        out.insert("limitRemaining".into(), json!(status.limit_remaining));
    }
    if let Some(duration) = &status.duration_until_reset {
        out.insert(
            "durationUntilReset".into(),
            json!(format!("{}s", duration.seconds)),
        );
    }
    Value::Object(out)
}

fn code_name(code: i32) -> &'static str {
    Code::try_from(code).unwrap_or(Code::Unknown).as_str_name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_and_proto_names_numbers_and_strings() {
        let request = parse_request(
            br#"{"domain":"d","hitsAddend":2,"descriptors":[
                {"entries":[{"key":"k","value":"v"}],"limit":{"requestsPerUnit":"5","unit":"MINUTE"},"hits_addend":"0"},
                {"entries":[{"key":"a","value":"b"}],"limit":{"requests_per_unit":7,"unit":3}}]}"#,
        )
        .unwrap();
        assert_eq!(request.domain, "d");
        assert_eq!(request.hits_addend, 2);
        let first = &request.descriptors[0];
        assert_eq!(first.entries[0].key, "k");
        assert_eq!(first.hits_addend, Some(UInt64Value { value: 0 }));
        let limit = first.limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (5, Unit::Minute as i32)
        );
        let second = request.descriptors[1].limit.as_ref().unwrap();
        assert_eq!(
            (second.requests_per_unit, second.unit),
            (7, Unit::Hour as i32)
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        assert_eq!(
            parse_request(br#"{"domain":"d","descriptors":[{"limit":{"unit":"FORTNIGHT"}}]}"#)
                .unwrap_err(),
            "descriptors[0].limit.unit: unknown unit `FORTNIGHT`"
        );
        assert_eq!(
            parse_request(br#"{"domain":"d","descriptors":[{"hitsAddend":"many"}]}"#).unwrap_err(),
            "descriptors[0].hitsAddend: `many` is not a whole number"
        );
        assert!(parse_request(br#"{"domian":"d"}"#)
            .unwrap_err()
            .starts_with("invalid request JSON: unknown field `domian`"));
    }
}
