//! Compresses each embedded asset once, at build time, so that the server can send gzip to clients
//! on slow links without any compression code in the binary. `src/app/assets.rs` embeds one form
//! of each: `NAME.gz` where gzip pays for its header lines, else `NAME.plain`, the file as it is
//! (the other file is empty). A file embedded only gzipped is inflated for a client that does
//! not take gzip, once: the binary carries each large file once, not twice.
//!
//! The output is deterministic (no file name, modification time 0, operating system "unknown"), so
//! the same input always gives the same bytes and the same `ETag`.

use std::io::Write;
use std::path::Path;
use std::{env, fs};

use flate2::{Compression, GzBuilder};

/// Every file in `assets/` that `src/assets.rs` embeds.
const ASSETS: [&str; 6] = [
    "htmx.min.js",
    "sse.min.js",
    "htmx4.min.js",
    "hx-sse4.min.js",
    "app.css",
    "favicon.svg",
];

/// The bytes that sending gzip adds to a response besides its body: the two header lines it needs
/// and the longer `ETag`. A gzip body that does not save more than this is not offered. (The same
/// figure as `GZIP_COST` in `src/app/assets.rs`, which a test there checks.)
const GZIP_COST: usize =
    "Content-Encoding: gzip\r\n".len() + "Vary: Accept-Encoding\r\n".len() + "-gz".len();

fn main() {
    let out_dir = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ASSETS {
        let input = Path::new("assets").join(name);
        println!("cargo::rerun-if-changed={}", input.display());
        let body = fs::read(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let gzip = gzip(&body);
        let (plain, gzip) = if gzip.len() + GZIP_COST < body.len() {
            (Vec::new(), gzip)
        } else {
            (body, Vec::new())
        };
        for (suffix, bytes) in [("plain", plain), ("gz", gzip)] {
            let output = Path::new(&out_dir).join(format!("{name}.{suffix}"));
            fs::write(&output, bytes).unwrap_or_else(|e| panic!("{}: {e}", output.display()));
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}
