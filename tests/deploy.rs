//! The systemd unit the project ships (`deploy/sse-htmx.service`): every flag it passes is one the
//! binary takes, and `systemd-analyze verify` finds nothing to say about it.

use std::path::{Path, PathBuf};
use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_sse-htmx");
const INSTALLED: &str = "/usr/local/bin/sse-htmx";

fn unit() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/sse-htmx.service"
    ))
    .expect("deploy/sse-htmx.service")
}

/// The arguments of the unit's `ExecStart=` line, after the binary.
fn exec_start_arguments(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart= line");
    let mut words = line.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().as_deref(), Some(INSTALLED));
    words.collect()
}

#[test]
fn the_units_flags_are_the_binarys() {
    let mut args = exec_start_arguments(&unit());
    // --help after the flags: each is parsed and checked, then nothing is served.
    args.push("--help".into());
    let output = Command::new(BINARY).args(&args).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `systemd-analyze`, or `None` (after saying so) when it is not installed, outside CI.
fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("systemd-analyze"))
            .find(|candidate| candidate.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-analyze (Debian's systemd)"
        );
        eprintln!("skipping: no systemd-analyze (Debian's systemd) to verify the unit");
    }
    found
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    // verify checks that ExecStart's program exists: point it at the binary just built. The
    // file keeps the unit's name, which verify reads as its type.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sse-htmx.service");
    std::fs::write(&path, unit().replace(INSTALLED, BINARY)).unwrap();

    let output = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    // An unknown key or a bad value is only a warning (exit code 0): any output is a finding.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "systemd-analyze verify: {said}");
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
}
