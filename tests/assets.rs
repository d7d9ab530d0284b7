//! Every embedded file over TCP, in both representations: the gzip body and the identity body
//! each decode to exactly the bytes of the file in `assets/`, with the headers a cache needs, and
//! each revalidates (`304`) with its own `ETag`.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Response, TestServer, request};

/// Each asset, and whether it is offered gzip-compressed (the favicon is not: compressed, it would
/// save less than the header lines gzip adds).
const ASSETS: [(&str, bool); 6] = [
    ("/assets/htmx.min.js", true),
    ("/assets/sse.min.js", true),
    ("/assets/htmx4.min.js", true),
    ("/assets/hx-sse4.min.js", true),
    ("/assets/app.css", true),
    ("/assets/favicon.svg", false),
];

/// The file in `assets/` that `path` serves, read from disk.
fn file(path: &str) -> Vec<u8> {
    let name = path.strip_prefix("/assets/").expect("an asset path");
    let on_disk = format!("{}/{name}", concat!(env!("CARGO_MANIFEST_DIR"), "/assets"));
    let bytes = std::fs::read(&on_disk).unwrap_or_else(|e| panic!("{on_disk}: {e}"));
    assert!(!bytes.is_empty(), "{on_disk} is empty");
    bytes
}

fn server() -> TestServer {
    TestServer::start(Duration::from_millis(50))
}

fn gunzip(path: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{path}: not a gzip stream: {e}"));
    out
}

/// The body is whole: as long as `Content-Length` says.
fn assert_whole(path: &str, response: &Response) {
    assert_eq!(response.status, 200, "{path}");
    let length: usize = response
        .header("Content-Length")
        .unwrap_or_else(|| panic!("{path}: no Content-Length"))
        .parse()
        .unwrap_or_else(|e| panic!("{path}: Content-Length: {e}"));
    assert_eq!(length, response.body.len(), "{path}: Content-Length");
}

#[test]
fn the_gzip_body_decodes_to_the_file() {
    let server = server();
    for (path, gzipped) in ASSETS {
        let file = file(path);
        for accept in ["gzip", "gzip, deflate, br", "br;q=1, gzip;q=0.5"] {
            let response = request(
                server.addr,
                "GET",
                path,
                &format!("Accept-Encoding: {accept}\r\n"),
            );
            assert_whole(path, &response);
            if gzipped {
                assert_eq!(response.header("Content-Encoding"), Some("gzip"), "{path}");
                assert_eq!(response.header("Vary"), Some("Accept-Encoding"), "{path}");
                assert!(response.body.len() < file.len(), "{path}: compressed");
                assert_eq!(gunzip(path, &response.body), file, "{path} ({accept})");
            } else {
                assert_eq!(response.header("Content-Encoding"), None, "{path}");
                assert_eq!(response.header("Vary"), None, "{path}: one representation");
                assert_eq!(response.body, file, "{path} ({accept})");
            }
        }
    }
}

#[test]
fn the_identity_body_is_the_file() {
    let server = server();
    for (path, gzipped) in ASSETS {
        let file = file(path);
        for accept in [
            "",
            "Accept-Encoding: gzip;q=0\r\n",
            "Accept-Encoding: identity\r\n",
            "Accept-Encoding: br\r\n",
            "Accept-Encoding: *;q=1, gzip;q=0\r\n",
        ] {
            let response = request(server.addr, "GET", path, accept);
            assert_whole(path, &response);
            assert_eq!(
                response.header("Content-Encoding"),
                None,
                "{path} ({accept:?})"
            );
            let vary = gzipped.then_some("Accept-Encoding");
            assert_eq!(response.header("Vary"), vary, "{path} ({accept:?})");
            assert_eq!(response.body, file, "{path} ({accept:?})");
        }
    }
}

/// Each representation revalidates with its own tag, and a tag of the other representation does
/// not stand for it.
#[test]
fn each_representation_is_304_with_its_own_etag() {
    let server = server();
    let gzip = "Accept-Encoding: gzip\r\n";
    for (path, gzipped) in ASSETS {
        let identity_tag = etag(&request(server.addr, "GET", path, ""), path);
        let gzip_tag = etag(&request(server.addr, "GET", path, gzip), path);
        if !gzipped {
            assert_eq!(gzip_tag, identity_tag, "{path}: one representation");
            let again = request(
                server.addr,
                "GET",
                path,
                &format!("{gzip}If-None-Match: {identity_tag}\r\n"),
            );
            assert_eq!(again.status, 304, "{path}");
            continue;
        }
        assert_ne!(gzip_tag, identity_tag, "{path}: a tag per representation");

        for (accept, tag, other_tag) in [
            ("", &identity_tag, &gzip_tag),
            (gzip, &gzip_tag, &identity_tag),
        ] {
            let fresh = request(
                server.addr,
                "GET",
                path,
                &format!("{accept}If-None-Match: {tag}\r\n"),
            );
            assert_eq!(fresh.status, 304, "{path} ({accept:?})");
            assert!(fresh.body.is_empty(), "{path}: a 304 has no body");
            assert_eq!(fresh.header("ETag"), Some(tag.as_str()), "{path}");
            assert_eq!(fresh.header("Vary"), Some("Accept-Encoding"), "{path}");
            let coding = (!accept.is_empty()).then_some("gzip");
            assert_eq!(fresh.header("Content-Encoding"), coding, "{path}");

            let stale = request(
                server.addr,
                "GET",
                path,
                &format!("{accept}If-None-Match: {other_tag}\r\n"),
            );
            assert_whole(path, &stale);
            assert_eq!(stale.header("ETag"), Some(tag.as_str()), "{path}");
        }
    }
}

fn etag(response: &Response, path: &str) -> String {
    assert_eq!(response.status, 200, "{path}");
    let tag = response
        .header("ETag")
        .unwrap_or_else(|| panic!("{path}: no ETag"));
    assert!(
        tag.starts_with('"') && tag.ends_with('"'),
        "{path}: a strong tag, {tag}"
    );
    tag.to_owned()
}
