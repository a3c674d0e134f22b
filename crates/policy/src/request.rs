//! What the policy can see of a request. Adapters (gRPC, Envoy) implement
//! [`Attributes`] over their own request types, so matching copies nothing.

use std::collections::HashMap;
use std::net::IpAddr;

/// A request's attributes, as rules match on them. Empty strings count as
/// absent.
pub trait Attributes {
    /// The policy domain.
    fn domain(&self) -> &str;
    /// The value of the first descriptor entry with `key`.
    fn descriptor(&self, key: &str) -> Option<&str>;
    /// The end client's address.
    fn client_ip(&self) -> Option<IpAddr>;
    /// The authenticated user.
    fn user(&self) -> Option<&str>;
    /// The API key.
    fn api_key(&self) -> Option<&str>;
    /// The HTTP method, any case.
    fn method(&self) -> Option<&str>;
    /// The path, without query string.
    fn path(&self) -> Option<&str>;
    /// The value of header `name` (given in lower case).
    fn header(&self, name: &str) -> Option<&str>;
}

/// An owned request, for embedding the policy and for tests.
#[derive(Debug, Clone, Default)]
pub struct RequestAttributes {
    /// The policy domain.
    pub domain: String,
    /// Ordered descriptor entries.
    pub descriptors: Vec<(String, String)>,
    /// The end client's address.
    pub client_ip: Option<IpAddr>,
    /// The authenticated user, empty if anonymous.
    pub user: String,
    /// The API key, empty if none.
    pub api_key: String,
    /// The HTTP method.
    pub method: String,
    /// The path.
    pub path: String,
    /// Headers by lower-case name.
    pub headers: HashMap<String, String>,
}

fn present(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

impl RequestAttributes {
    /// A request in `domain` with nothing else.
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_string(),
            ..Self::default()
        }
    }

    /// Adds a descriptor entry.
    pub fn descriptor(mut self, key: &str, value: &str) -> Self {
        self.descriptors.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds a header (its name is lower-cased).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }
}

impl Attributes for RequestAttributes {
    fn domain(&self) -> &str {
        &self.domain
    }
    fn descriptor(&self, key: &str) -> Option<&str> {
        self.descriptors
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
    fn user(&self) -> Option<&str> {
        present(&self.user)
    }
    fn api_key(&self) -> Option<&str> {
        present(&self.api_key)
    }
    fn method(&self) -> Option<&str> {
        present(&self.method)
    }
    fn path(&self) -> Option<&str> {
        present(&self.path)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}
