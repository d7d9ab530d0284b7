//! Compresses each embedded asset once, at build time, so that the server can send gzip to clients
//! on slow links without any compression code in the binary. `src/assets.rs` includes both forms.
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

fn main() {
    let out_dir = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ASSETS {
        let input = Path::new("assets").join(name);
        println!("cargo::rerun-if-changed={}", input.display());
        let body = fs::read(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let output = Path::new(&out_dir).join(format!("{name}.gz"));
        fs::write(&output, gzip(&body)).unwrap_or_else(|e| panic!("{}: {e}", output.display()));
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
