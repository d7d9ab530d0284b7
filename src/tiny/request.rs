//! The request a handler sees: an owned copy of what tiny_http parsed, with nothing of tiny_http
//! in it, so handlers can be tested with [`Request::fake`] and no socket.

use std::net::SocketAddr;

/// The request methods the server tells apart. Anything else is kept by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Options,
    Other(String),
}

impl Method {
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Options => "OPTIONS",
            Method::Other(name) => name,
        }
    }
}

/// One request, owned.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The path without the query string. It is matched exactly, never decoded or joined to a
    /// directory, so `..` or `%2e` can reach nothing but the 404 page.
    pub path: String,
    /// What follows `?` in the URL, if anything.
    pub query: Option<String>,
    /// The client's address (a request that has none, which only a Unix socket could give, is
    /// never handed on).
    pub peer: SocketAddr,
    /// Every header line in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, for the few requests that have one (read by the layer before the handler runs,
    /// and bounded by it).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `/path?query` into its path and query.
pub fn split_url(url: &str) -> (&str, Option<&str>) {
    url.split_once('?')
        .map_or((url, None), |(path, query)| (path, Some(query)))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Request {
        /// A request as a test would write it:
        /// `Request::fake("GET", "/?x=1", &[("Accept", "*/*")])`.
        pub(crate) fn fake(method: &str, url: &str, headers: &[(&str, &str)]) -> Request {
            let (path, query) = split_url(url);
            Request {
                method: Method::from_name(method),
                path: path.to_owned(),
                query: query.map(str::to_owned),
                peer: SocketAddr::from(([127, 0, 0, 1], 50000)),
                headers: headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
                body: Vec::new(),
            }
        }
    }

    #[test]
    fn query_is_not_part_of_the_path() {
        assert_eq!(
            split_url("/assets/htmx.min.js?v=1"),
            ("/assets/htmx.min.js", Some("v=1"))
        );
        assert_eq!(split_url("/"), ("/", None));
    }

    #[test]
    fn headers_are_found_by_any_case() {
        let request = Request::fake("GET", "/", &[("last-event-id", "4")]);
        assert_eq!(request.header("Last-Event-ID"), Some("4"));
        assert_eq!(request.header("Accept"), None);
    }

    #[test]
    fn methods_round_trip_their_names() {
        for name in ["GET", "HEAD", "POST", "OPTIONS", "BREW"] {
            assert_eq!(Method::from_name(name).as_str(), name);
        }
    }
}
