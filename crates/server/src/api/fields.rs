//! Request validation shared by the protocol adapters: errors are
//! `INVALID_ARGUMENT` with a message that starts with the field.
//!
//! Field names are taken as `impl Display` (a `&str`, or `format_args!` for
//! an indexed one like `descriptors[2].value`) so that they are only
//! formatted when a request is refused, never on the path of a valid one.

use ratelimitd_policy::RequestCaps;
use std::fmt::Display;
use tonic::Status;

/// `INVALID_ARGUMENT`: `field: problem`.
pub fn invalid(field: impl Display, problem: impl Display) -> Status {
    Status::invalid_argument(format!("{field}: {problem}"))
}

/// Refuses a value longer than the caps allow.
pub fn check_length(field: impl Display, value: &str, caps: &RequestCaps) -> Result<(), Status> {
    if value.len() > caps.max_value_bytes {
        return Err(invalid(
            field,
            format!(
                "{} bytes, at most {} allowed",
                value.len(),
                caps.max_value_bytes
            ),
        ));
    }
    Ok(())
}

/// Refuses more than `max` entries of a list.
pub fn check_count(
    field: impl Display,
    what: &str,
    count: usize,
    max: usize,
) -> Result<(), Status> {
    if count > max {
        return Err(invalid(
            field,
            format!("{count} {what}, at most {max} allowed"),
        ));
    }
    Ok(())
}
