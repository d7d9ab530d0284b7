//! The command line as a user meets it: `--help` is what the README shows, and bad input is one
//! line on stderr and exit code 2, before anything is served.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::{EventStream, ServerProcess, request};

const BINARY: &str = env!("CARGO_BIN_EXE_sse-htmx");

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .output()
        .expect("run sse-htmx")
}

/// Exit code 2 and one line on stderr that contains `says`; nothing on stdout.
fn assert_refused(args: &[&str], says: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.contains(says),
        "{args:?}: {stderr:?} should say {says:?}"
    );
    assert!(output.stdout.is_empty(), "{args:?}: nothing is served");
}

#[test]
fn help_is_what_the_readme_shows() {
    let output = run(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(run(&["-h"]).stdout, printed.as_bytes());
    // The README shows the default build's help; a build with the redis feature has one flag
    // more (see tests/redis.rs), left out here.
    #[cfg(feature = "redis")]
    let help = without_option(&printed, "--redis");
    #[cfg(not(feature = "redis"))]
    let help = printed;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown = readme
        .split_once("$ sse-htmx --help\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the README shows --help in a console block");
    assert_eq!(help, shown, "README.md's --help block is out of date");
}

/// `help` without the lines of `flag`: its own line and the indented lines after it.
#[cfg(feature = "redis")]
fn without_option(help: &str, flag: &str) -> String {
    let mut inside = false;
    let mut kept = String::new();
    for line in help.split_inclusive('\n') {
        let option = line.trim_start();
        if option.starts_with('-') {
            inside = option.starts_with(flag);
        } else if line.trim().is_empty() || !line.starts_with("      ") {
            inside = false;
        }
        if !inside {
            kept.push_str(line);
        }
    }
    kept
}

#[test]
fn version_names_the_package_version() {
    let output = run(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("sse-htmx {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flags_and_values_are_one_line_and_exit_code_2() {
    assert_refused(&["--no-such-flag"], "--no-such-flag");
    assert_refused(&["--addr", "localhost"], "expected IP:PORT");
    assert_refused(&["--addr", "[::1]"], "expected IP:PORT");
    assert_refused(&["--addr", "::1"], "expected IP:PORT");
    assert_refused(&["--addr", ":http"], "expected IP:PORT");
    assert_refused(&["--addr", "localhost:65536"], "expected IP:PORT");
    assert_refused(&["--addr", "example.com:80"], "localhost:PORT");
    assert_refused(&["--interval", "soon"], "e.g. 1s, 250ms");
    assert_refused(&["--interval", "0s"], "at least 1ms");
    assert_refused(&["--max-streams", "0"], "at least 1");
    assert_refused(&["--max-streams", "-1"], "--max-streams");
    assert_refused(&["--history", "0"], "at least 1");
    assert_refused(&["--max-message", "many"], "--max-message");
    assert_refused(&["--max-message", "16385"], "at most 16384");
    assert_refused(&["--publish-limit", "1.5"], "--publish-limit");
    assert_refused(&["--retry"], "--retry");
    assert_refused(&["--exec", "load"], "expected NAME=COMMAND");
    assert_refused(&["--exec", "load= "], "expected NAME=COMMAND");
    assert_refused(
        &["--cors", "board:8080"],
        "expected * or http(s)://HOST[:PORT]",
    );
    assert_refused(&["--cors", "http://board/page"], "--cors");
    assert_refused(&["--cors", "*:80"], "--cors");
}

/// Browsers leave a scheme's own port out of `Origin`: an origin given with it is the one they
/// send without it.
#[test]
fn a_cors_origin_given_with_its_schemes_own_port_is_the_one_browsers_send() {
    let cors = [
        "--cors",
        "http://Board.example:80/",
        "--cors",
        "https://[::1]:443",
    ];
    let server = ServerProcess::start(&cors);
    let allowed = |origin: &str| {
        let header = format!("Origin: {origin}\r\n");
        let stream = EventStream::open_path(server.addr, "/connect", &header);
        assert_eq!(stream.head.status, 200);
        stream.head.header("Access-Control-Allow-Origin") == Some(origin)
    };
    assert!(allowed("http://board.example"));
    assert!(allowed("https://[::1]"));
    // Another port is another origin.
    assert!(!allowed("http://board.example:8080"));
    assert!(!allowed("https://[::1]:80"));
}

#[test]
fn an_exec_feed_that_cannot_be_is_one_line_and_exit_code_2() {
    let quiet = ["--addr", "127.0.0.1:0", "--quiet"];
    let with = |more: &[&'static str]| [&quiet[..], more].concat();
    assert_refused(&with(&["--exec", "Load=uptime"]), "a feed's name is a-z");
    assert_refused(
        &with(&["--max-feeds", "1", "--exec", "load=uptime"]),
        "no room for one more feed (--max-feeds 1)",
    );
    assert_refused(
        &with(&["--exec", "load=uptime", "--exec", "load=cat /proc/loadavg"]),
        "--exec load=...: given twice",
    );
}

#[test]
fn a_token_file_missing_or_empty_is_one_line_and_exit_code_2() {
    let dir = env!("CARGO_TARGET_TMPDIR");
    let missing = format!("{dir}/no-such-token");
    assert_refused(
        &["--addr", "127.0.0.1:0", "--quiet", "--token-file", &missing],
        "cannot use the token file",
    );
    let empty = format!("{dir}/empty-token-{}", std::process::id());
    std::fs::write(&empty, "\n").unwrap();
    assert_refused(
        &["--addr", "127.0.0.1:0", "--quiet", "--token-file", &empty],
        "its first line is empty",
    );
    std::fs::remove_file(&empty).unwrap();
}

#[test]
fn an_address_in_use_is_one_line_and_exit_code_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_refused(&["--addr", &addr, "--quiet"], &addr);
}

#[test]
fn redis_is_one_line_and_exit_code_2_where_it_cannot_be_used() {
    // The address is never reached: each is refused before.
    let redis = ["--addr", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1/0"];
    #[cfg(not(feature = "redis"))]
    assert_refused(&redis, "--redis: this build has no Redis support");
    #[cfg(feature = "redis")]
    assert_refused(&[&redis[..], &["--store", "/tmp/x"]].concat(), "--store");
}

#[test]
fn a_store_that_cannot_be_opened_is_one_line_and_exit_code_2() {
    let path = concat!(
        env!("CARGO_TARGET_TMPDIR"),
        "/no-such-directory/chat.journal"
    );
    assert_refused(
        &["--addr", "127.0.0.1:0", "--quiet", "--store", path],
        "no-such-directory",
    );
}

#[test]
fn a_store_that_another_server_holds_is_refused_while_it_runs() {
    let path = format!(
        "{}/cli-store-in-use-{}.journal",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    let _ = std::fs::remove_file(&path);
    let first = ServerProcess::start(&["--store", &path]);
    assert_refused(
        &["--addr", "127.0.0.1:0", "--store", &path],
        "is in use by another server",
    );
    assert_eq!(request(first.addr, "GET", "/healthz", "").status, 200);
    drop(first);
    let second = ServerProcess::start(&["--store", &path]);
    assert_eq!(request(second.addr, "GET", "/feeds", "").status, 200);
    drop(second);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_port_alone_listens_on_every_interface_and_the_start_line_names_a_url_that_works() {
    for (addr, shown) in [(":0", "[::]"), ("[::]:0", "[::]"), ("0.0.0.0:0", "0.0.0.0")] {
        let server = ServerProcess::start_logging(&["--addr", addr]);
        let port = server.addr.port();
        let line = &server.start_line();
        assert_eq!(
            line,
            &format!(
                "sse-htmx listening on {shown}:{port}; open http://127.0.0.1:{port}/ \
                 (from elsewhere: this host's address)"
            ),
            "{addr}"
        );
        assert_eq!(request(server.addr, "GET", "/healthz", "").status, 200);
    }
}

#[test]
fn localhost_is_127_0_0_1() {
    let server = ServerProcess::start_logging(&["--addr", "LocalHost:0"]);
    let port = server.addr.port();
    assert_eq!(
        server.start_line(),
        format!("sse-htmx listening; open http://127.0.0.1:{port}/")
    );
    assert_eq!(request(server.addr, "GET", "/healthz", "").status, 200);
}

/// What must not change about a path that is refused as a store: its bytes (none for a
/// directory) and its modification time, set to a day long past so that any write would show.
#[derive(Debug, PartialEq)]
struct Look {
    bytes: Option<Vec<u8>>,
    modified: SystemTime,
}

fn look_back_dated(path: &Path) -> Look {
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    File::open(path).unwrap().set_modified(past).unwrap();
    let looked = look(path);
    assert_eq!(looked.modified, past);
    looked
}

fn look(path: &Path) -> Look {
    let meta = std::fs::metadata(path).unwrap();
    Look {
        bytes: meta.is_file().then(|| std::fs::read(path).unwrap()),
        modified: meta.modified().unwrap(),
    }
}

#[test]
fn a_store_that_is_not_a_journal_is_refused_and_left_as_it_is() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-not-a-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "a text file of 26 bytes..\n").unwrap();
    let a_directory = dir.join("a-directory");
    std::fs::create_dir(&a_directory).unwrap();

    for (path, says) in [
        (&notes, "is not a journal"),
        (&a_directory, "is a directory"),
    ] {
        let before = look_back_dated(path);
        let arg = path.to_str().unwrap();
        assert_refused(&["--addr", "127.0.0.1:0", "--store", arg], says);
        assert_refused(&["--addr", "127.0.0.1:0", "--store", arg], arg);
        assert_eq!(look(path), before, "{arg} was touched");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A journal in a directory the server may not create files in could never be compacted (a
/// compaction writes its new file beside it) and would grow by every message for good: a start
/// refuses it, and leaves it as it was. Root may create files anywhere, so as root the server
/// runs as `nobody`, from a copy of the binary that `nobody` can reach.
#[test]
fn a_store_in_a_directory_the_server_cannot_write_in_is_refused_and_left_as_it_is() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let as_root = rustix::process::geteuid().is_root();
    let base = std::env::temp_dir().join(format!("sse-htmx-cli-unwritable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    std::fs::create_dir(&base).unwrap();
    mode(&base, 0o755);
    let binary = if as_root {
        let copy = base.join("sse-htmx");
        std::fs::copy(BINARY, &copy).unwrap();
        mode(&copy, 0o755);
        copy
    } else {
        PathBuf::from(BINARY)
    };
    let dir = base.join("journals");
    std::fs::create_dir(&dir).unwrap();
    let journal = dir.join("chat.journal");
    // A journal's header (version 2) and no message yet, writable by anyone.
    std::fs::write(&journal, b"\xFFSSEchat\x02\x00\x00\x00").unwrap();
    mode(&journal, 0o666);
    mode(&dir, 0o555);
    let before = look_back_dated(&journal);

    let mut command = Command::new(&binary);
    command.args([
        "--addr",
        "127.0.0.1:0",
        "--store",
        journal.to_str().unwrap(),
    ]);
    if as_root {
        command.uid(65534).gid(65534);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run sse-htmx");
    // Not refused, it would serve until stopped.
    if !common::wait_for(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("a journal that cannot be compacted was served");
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot be compacted") && stderr.contains("chat.journal.compacting"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing is served");
    assert_eq!(look(&journal), before, "the journal was touched");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a file was left beside it"
    );

    mode(&dir, 0o755);
    let _ = std::fs::remove_dir_all(&base);
}
