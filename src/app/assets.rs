//! The files the page needs, compiled into the binary so that it runs with no internet and no
//! files beside it: htmx 2 and its SSE extension, htmx 4 and its own SSE extension (all unmodified
//! from the npm registry, see `assets/refresh.sh`), the page's stylesheet and its icon.
//!
//! Each asset is served at a fixed path. Pages link to it with `?v=` and its content hash, so it
//! can be cached for a year: a new build with other bytes links to a new URL.
//!
//! Most assets are embedded gzip-compressed only, compressed once by `build.rs`: the server sends
//! those bytes as they are to clients that take gzip (every browser), and inflates them once, on
//! the first request that does not, for identity. So the binary holds each large file once and
//! no compression code, only an inflater. The two forms are two representations of one resource,
//! so each has its own strong `ETag`.

use std::sync::OnceLock;

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    /// The file as it is in `assets/`, when it is embedded so (gzip would not pay); else empty.
    plain: &'static [u8],
    /// The same file gzip-compressed, if that is worth its extra header lines (see [`GZIP_COST`]).
    pub gzip: Option<&'static [u8]>,
    /// The file inflated from `gzip`, made on the first request that needs it.
    inflated: OnceLock<Vec<u8>>,
    hash: u64,
}

/// The bytes that sending gzip adds to a response besides its body: the two header lines it needs
/// and the longer `ETag`. A gzip body that does not save more than this is not offered.
/// `build.rs` decides with the same figure; the tests check that its choices agree.
#[cfg(test)]
const GZIP_COST: usize =
    "Content-Encoding: gzip\r\n".len() + "Vary: Accept-Encoding\r\n".len() + "-gz".len();

/// A content coding the server can send an asset in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` header value, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
        }
    }
}

/// What to send for one request: the body, its coding, and its strong validator.
#[derive(Debug)]
pub struct Representation {
    pub encoding: Encoding,
    pub body: &'static [u8],
    pub etag: String,
}

impl Representation {
    /// Does this `If-None-Match` header value name this representation (so `304` is the answer)?
    pub fn not_modified(&self, if_none_match: &str) -> bool {
        etag_matches(if_none_match, &self.etag)
    }
}

impl Asset {
    /// An asset embedded as `plain` bytes or as `gzip` bytes: `build.rs` leaves the other empty.
    const fn new(
        path: &'static str,
        content_type: &'static str,
        plain: &'static [u8],
        gzip: &'static [u8],
    ) -> Asset {
        let (gzip, hash) = if gzip.is_empty() {
            (None, fnv1a(plain))
        } else {
            (Some(gzip), fnv1a(gzip))
        };
        Asset {
            path,
            content_type,
            plain,
            gzip,
            inflated: OnceLock::new(),
            hash,
        }
    }

    /// The file as it is in `assets/`.
    pub fn body(&'static self) -> &'static [u8] {
        match self.gzip {
            None => self.plain,
            Some(gzip) => self.inflated.get_or_init(|| inflate(gzip)),
        }
    }

    /// The URL pages use: the path plus the content hash.
    pub fn url(&self) -> String {
        format!("{}?v={:08x}", self.path, self.hash as u32)
    }

    /// A strong validator of the identity body: the same bytes always give the same tag.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// A strong validator of the gzip body. The gzip bytes follow from the identity bytes (the
    /// build compresses deterministically), so the identity hash plus a suffix is enough.
    pub fn gzip_etag(&self) -> String {
        format!("\"{:016x}-gz\"", self.hash)
    }

    /// The representation for a request with this `Accept-Encoding` header value (`None` if the
    /// request has none): gzip if the client accepts it and this asset has it, else identity.
    pub fn choose(&'static self, accept_encoding: Option<&str>) -> Representation {
        match self.gzip {
            Some(gzip) if accept_encoding.is_some_and(accepts_gzip) => Representation {
                encoding: Encoding::Gzip,
                body: gzip,
                etag: self.gzip_etag(),
            },
            _ => Representation {
                encoding: Encoding::Identity,
                body: self.body(),
                etag: self.etag(),
            },
        }
    }
}

/// Embeds `assets/$file` at `/assets/$file`, in the one form `build.rs` chose for it.
macro_rules! asset {
    ($file:literal, $content_type:literal) => {
        Asset::new(
            concat!("/assets/", $file),
            $content_type,
            include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".plain")),
            include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz")),
        )
    };
}

/// htmx 2.
pub static HTMX: Asset = asset!("htmx.min.js", "text/javascript; charset=utf-8");
/// The SSE extension for htmx 2 (`hx-ext="sse"`, `sse-connect`).
pub static HTMX_SSE: Asset = asset!("sse.min.js", "text/javascript; charset=utf-8");
/// htmx 4.
pub static HTMX4: Asset = asset!("htmx4.min.js", "text/javascript; charset=utf-8");
/// The SSE extension shipped with htmx 4 (`hx-sse:connect`).
pub static HTMX4_SSE: Asset = asset!("hx-sse4.min.js", "text/javascript; charset=utf-8");
pub static APP_CSS: Asset = asset!("app.css", "text/css; charset=utf-8");
pub static FAVICON: Asset = asset!("favicon.svg", "image/svg+xml");

static ALL: [&Asset; 6] = [&HTMX, &HTMX_SSE, &HTMX4, &HTMX4_SSE, &APP_CSS, &FAVICON];

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

/// Does an `Accept-Encoding` header value accept gzip (RFC 9110, section 12.5.3)?
///
/// `gzip` and its alias `x-gzip` name it, `*` stands for any coding not named, and `q=0` refuses.
/// A named entry wins over `*`. A weight that does not parse counts as a refusal: identity always
/// works, so doubt means identity.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut named = None;
    let mut any = None;
    for entry in accept_encoding.split(',') {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(true), |(_, value)| weight_above_zero(value.trim()));
        let accepted = weight == Some(true);
        let slot = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut named
        } else if coding == "*" {
            &mut any
        } else {
            continue;
        };
        // Of several entries for the same coding, the most favourable one counts.
        *slot = Some(slot.unwrap_or(false) || accepted);
    }
    named.or(any).unwrap_or(false)
}

/// Whether a weight (RFC 9110 section 12.4.2: `0` or `1`, then `.` and up to three digits, only
/// zeros after a `1`) is above zero; `None` if it is not a weight. Not parsed as a float, which
/// would link the float parser into the static binary for this alone.
fn weight_above_zero(weight: &str) -> Option<bool> {
    let (whole, fraction) = weight.split_once('.').unwrap_or((weight, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match whole {
        "0" => Some(fraction.bytes().any(|b| b != b'0')),
        "1" if fraction.bytes().all(|b| b == b'0') => Some(true),
        _ => None,
    }
}

/// The file in a gzip stream that `build.rs` wrote: a 10-byte header with no optional fields
/// (flags 0), the deflate data, then a checksum and the length, which the inflater does not need
/// (the bytes are the build's own, compiled in).
fn inflate(gzip: &[u8]) -> Vec<u8> {
    let deflated = gzip.get(10..).unwrap_or_default();
    miniz_oxide::inflate::decompress_to_vec(deflated).unwrap_or_default()
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
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    fn text(asset: &'static Asset) -> &'static str {
        std::str::from_utf8(asset.body()).expect("UTF-8")
    }

    #[test]
    fn finds_only_exact_paths() {
        for asset in ALL {
            assert!(std::ptr::eq(find(asset.path).unwrap(), asset));
        }
        assert_eq!(find("/assets/htmx4.min.js").unwrap().body(), HTMX4.body());
        assert_eq!(
            find("/assets/hx-sse4.min.js").unwrap().body(),
            HTMX4_SSE.body()
        );
        assert!(find("/assets/../assets/htmx.min.js").is_none());
        assert!(find("/assets/htmx.min.js.gz").is_none());
        assert!(find("/assets/").is_none());
    }

    #[test]
    fn embedded_files_are_htmx_2() {
        assert!(text(&HTMX).contains("version:\"2."), "htmx 2.x is embedded");
        assert!(text(&HTMX_SSE).contains("defineExtension(\"sse\""));
        assert_eq!((HTMX.body().len(), HTMX_SSE.body().len()), (52_182, 2_853));
    }

    #[test]
    fn embedded_files_are_htmx_4() {
        assert!(text(&HTMX4).contains("this.version=\"4.0.1\""));
        assert!(
            !text(&HTMX4).contains("defineExtension"),
            "htmx 4 renamed it"
        );
        // htmx 4's own extension: registered with htmx 4's API, connected by `hx-sse:connect`.
        let sse = text(&HTMX4_SSE);
        assert!(sse.contains("htmx.registerExtension(\"sse\""));
        assert!(sse.contains("\"hx-sse:connect\""));
        assert!(!sse.contains("defineExtension"), "not the htmx 2 extension");
        assert_eq!(
            (HTMX4.body().len(), HTMX4_SSE.body().len()),
            (37_448, 6_532)
        );
    }

    #[test]
    fn gzip_bodies_decode_to_the_identity_bodies() {
        for asset in ALL {
            if let Some(gzip) = asset.gzip {
                assert_eq!(gunzip(gzip), asset.body(), "{}", asset.path);
                assert!(
                    gzip.len() + GZIP_COST < asset.body().len(),
                    "{}",
                    asset.path
                );
            }
        }
    }

    /// The files in `assets/`, as the build read them.
    const FILES: [(&Asset, &[u8]); 6] = [
        (&HTMX, include_bytes!("../../assets/htmx.min.js")),
        (&HTMX_SSE, include_bytes!("../../assets/sse.min.js")),
        (&HTMX4, include_bytes!("../../assets/htmx4.min.js")),
        (&HTMX4_SSE, include_bytes!("../../assets/hx-sse4.min.js")),
        (&APP_CSS, include_bytes!("../../assets/app.css")),
        (&FAVICON, include_bytes!("../../assets/favicon.svg")),
    ];

    #[test]
    fn each_file_is_embedded_once_and_served_as_it_is() {
        for (asset, file) in FILES {
            assert_eq!(asset.body(), file, "{}", asset.path);
            // build.rs chose by the same cost as this module's.
            let pays = gzip_cost_pays(asset);
            assert_eq!(asset.gzip.is_some(), pays, "{}", asset.path);
            assert_eq!(asset.plain.is_empty(), pays, "{}", asset.path);
        }
    }

    fn gzip_cost_pays(asset: &Asset) -> bool {
        let file = FILES
            .iter()
            .find(|(a, _)| std::ptr::eq(*a, asset))
            .unwrap()
            .1;
        let gzip = asset.gzip.map_or_else(|| gzip_of(file), <[u8]>::to_vec);
        gzip.len() + GZIP_COST < file.len()
    }

    fn gzip_of(file: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(file).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_offered_where_it_pays() {
        for asset in [&HTMX, &HTMX_SSE, &HTMX4, &HTMX4_SSE, &APP_CSS] {
            assert!(asset.gzip.is_some(), "{}", asset.path);
        }
        // 178 bytes compress to 163: less than the header lines gzip would add.
        assert_eq!(FAVICON.gzip, None);
    }

    #[test]
    fn gzip_bodies_are_deterministic() {
        for gzip in ALL.iter().filter_map(|asset| asset.gzip) {
            assert_eq!(
                gzip[..4],
                [0x1f, 0x8b, 8, 0],
                "deflate, no flags (so no file name)"
            );
            assert_eq!(gzip[4..8], [0; 4], "modification time 0");
            assert_eq!(gzip[9], 255, "operating system unknown");
        }
    }

    #[test]
    fn each_representation_has_its_own_strong_tag() {
        let (identity, gzip) = (HTMX.etag(), HTMX.gzip_etag());
        assert_ne!(identity, gzip);
        assert_eq!(gzip, format!("{}-gz\"", identity.trim_end_matches('"')));
        for tag in [&identity, &gzip] {
            assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        }
        let tags: Vec<String> = ALL.iter().flat_map(|a| [a.etag(), a.gzip_etag()]).collect();
        let unique: std::collections::HashSet<&String> = tags.iter().collect();
        assert_eq!(unique.len(), tags.len());
    }

    #[test]
    fn choose_picks_gzip_only_when_accepted_and_available() {
        let gzip = HTMX.choose(Some("gzip, deflate, br"));
        assert_eq!(gzip.encoding, Encoding::Gzip);
        assert_eq!(gzip.body, HTMX.gzip.unwrap());
        assert_eq!(gzip.etag, HTMX.gzip_etag());
        assert_eq!(gzip.encoding.content_encoding(), Some("gzip"));

        for header in [None, Some(""), Some("br"), Some("gzip;q=0")] {
            let identity = HTMX.choose(header);
            assert_eq!(identity.encoding, Encoding::Identity, "{header:?}");
            assert_eq!(identity.body, HTMX.body());
            assert_eq!(identity.etag, HTMX.etag());
            assert_eq!(identity.encoding.content_encoding(), None);
        }
        assert_eq!(FAVICON.choose(Some("gzip")).encoding, Encoding::Identity);
        assert_eq!(FAVICON.choose(Some("gzip")).body, FAVICON.body());
    }

    #[test]
    fn accept_encoding_parsing() {
        for yes in [
            "gzip",
            "GZip",
            "x-gzip",
            "X-GZIP;q=0.5",
            "deflate, gzip;q=1.0, br",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "  gzip  ;  q = 0.001  ",
            "*",
            "*;q=0.5",
            "*;q=0, gzip",
            "gzip;q=0, x-gzip",
            "gzip;level=1",
            "identity, gzip",
        ] {
            assert!(accepts_gzip(yes), "{yes:?}");
        }
        for no in [
            "",
            " ",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip; Q=0.000",
            "gzip;q=0, *",
            "*, gzip;q=0",
            "*;q=0",
            "gzipx",
            "x-gzip;q=0",
            "gzip;q=zero",
            "gzip;q=",
            "gzip;q=0.0001",
            "gzip;q=1.5",
            "gzip;q=2",
            "gzip;q=1e-3",
            "gzip;q=-1",
            "gzip;q=.5",
        ] {
            assert!(!accepts_gzip(no), "{no:?}");
        }
    }

    #[test]
    fn if_none_match_names_the_chosen_representation() {
        let gzip = HTMX.choose(Some("gzip"));
        let identity = HTMX.choose(None);
        assert!(gzip.not_modified(&HTMX.gzip_etag()));
        assert!(!gzip.not_modified(&HTMX.etag()));
        assert!(identity.not_modified(&HTMX.etag()));
        assert!(!identity.not_modified(&HTMX.gzip_etag()));
        // A cache holding both variants lists both tags; either representation matches.
        let both = format!("{}, {}", HTMX.etag(), HTMX.gzip_etag());
        assert!(gzip.not_modified(&both) && identity.not_modified(&both));
        assert!(gzip.not_modified(&format!("W/{}", HTMX.gzip_etag())));
        assert!(gzip.not_modified("*"));
        assert!(!gzip.not_modified(&APP_CSS.gzip_etag()));
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
