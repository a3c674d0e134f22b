//! Reading the reference service's variables as its `envconfig` reads
//! them (Go's booleans and durations), each error naming its variable.

use ratelimitd_policy::parse_duration;
use std::collections::BTreeMap;

/// The process's environment, and the errors found reading it.
pub(super) struct Vars {
    values: BTreeMap<String, String>,
    pub errors: Vec<String>,
}

impl Vars {
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: values.into_iter().collect(),
            errors: Vec::new(),
        }
    }

    /// Records that `variable`'s `value` is refused, and why.
    pub fn error(&mut self, variable: &str, value: &str, message: &str) {
        self.errors.push(format!("{variable}={value}: {message}"));
    }

    /// Its value, if set and not empty.
    pub fn text(&self, variable: &str) -> Option<String> {
        self.values
            .get(variable)
            .filter(|value| !value.is_empty())
            .cloned()
    }

    /// A boolean as Go's `strconv.ParseBool` reads it (`1`, `t`, `true`,
    /// `0`, `f`, `false` in any case); unset: false.
    pub fn flag(&mut self, variable: &str) -> bool {
        self.flag_or(variable, false)
    }

    /// [`Vars::flag`] with another default.
    pub fn flag_or(&mut self, variable: &str, default: bool) -> bool {
        let Some(text) = self.text(variable) else {
            return default;
        };
        match text.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => true,
            "0" | "f" | "false" => false,
            _ => {
                self.error(variable, &text, "expected true or false");
                default
            }
        }
    }

    /// A whole number, if set.
    pub fn number(&mut self, variable: &str) -> Option<usize> {
        let text = self.text(variable)?;
        text.parse()
            .map_err(|_| self.error(variable, &text, "expected a whole number"))
            .ok()
    }

    /// A number with a fraction, if set.
    pub fn ratio(&mut self, variable: &str) -> Option<f32> {
        let text = self.text(variable)?;
        text.parse()
            .map_err(|_| self.error(variable, &text, "expected a number such as 0.8"))
            .ok()
    }

    /// A duration (`10s`, `500ms`), checked, as the policy writes it.
    pub fn duration(&mut self, variable: &str) -> Option<String> {
        let text = self.text(variable)?;
        match parse_duration(&text) {
            Ok(_) => Some(text),
            Err(message) => {
                self.error(variable, &text, &message);
                None
            }
        }
    }

    /// The variables set, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}
