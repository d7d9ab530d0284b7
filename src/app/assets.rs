//! The files the page needs, compiled into the binary so that it runs with no internet and no
//! files beside it: htmx and its SSE extension (unmodified from the npm registry, see
//! `assets/refresh.sh`) and the page's stylesheet.
//!
//! Each asset is served at a fixed path. Pages link to it with `?v=` and its content hash, so it
//! can be cached for a year: a new build with other bytes links to a new URL.

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    hash: u64,
}

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        Asset {
            path,
            content_type,
            body,
            hash: fnv1a(body),
        }
    }

    /// The URL pages use: the path plus the content hash.
    pub fn url(&self) -> String {
        format!("{}?v={:08x}", self.path, self.hash as u32)
    }

    /// A strong validator: the same bytes always give the same tag.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }
}

pub static HTMX: Asset = Asset::new(
    "/assets/htmx.min.js",
    "text/javascript; charset=utf-8",
    include_bytes!("../../assets/htmx.min.js"),
);

pub static HTMX_SSE: Asset = Asset::new(
    "/assets/sse.min.js",
    "text/javascript; charset=utf-8",
    include_bytes!("../../assets/sse.min.js"),
);

pub static APP_CSS: Asset = Asset::new(
    "/assets/app.css",
    "text/css; charset=utf-8",
    include_bytes!("../../assets/app.css"),
);

pub static FAVICON: Asset = Asset::new(
    "/assets/favicon.svg",
    "image/svg+xml",
    include_bytes!("../../assets/favicon.svg"),
);

static ALL: [&Asset; 4] = [&HTMX, &HTMX_SSE, &APP_CSS, &FAVICON];

/// The asset served at `path`, if any. Only these exact paths match: nothing is ever read from
/// the file system.
pub fn find(path: &str) -> Option<&'static Asset> {
    ALL.iter().copied().find(|asset| asset.path == path)
}

/// Does an `If-None-Match` header value name this tag (or `*`)?
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// FNV-1a, 64 bits: computed at compile time, so serving an asset hashes nothing.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_exact_paths() {
        assert!(find("/assets/htmx.min.js").is_some());
        assert!(find("/assets/../assets/htmx.min.js").is_none());
        assert!(find("/assets/").is_none());
    }

    #[test]
    fn embedded_files_are_htmx_2() {
        let htmx = std::str::from_utf8(HTMX.body).unwrap();
        assert!(htmx.contains("version:\"2."), "htmx 2.x is embedded");
        let sse = std::str::from_utf8(HTMX_SSE.body).unwrap();
        assert!(sse.contains("defineExtension(\"sse\""));
    }

    #[test]
    fn etag_matching() {
        let tag = HTMX.etag();
        assert!(etag_matches(&tag, &tag));
        assert!(etag_matches(&format!("\"x\", W/{tag}"), &tag));
        assert!(etag_matches("*", &tag));
        assert!(!etag_matches("\"other\"", &tag));
    }

    #[test]
    fn fnv_known_value() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
