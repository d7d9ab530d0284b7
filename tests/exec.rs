//! Programs whose output is a feed (`--exec NAME=COMMAND`), over real TCP: each line a message of
//! the feed (cut, not refused, when too long), started again a second after it exits and later
//! while it keeps failing, stopped with the server (the processes it started too, one that
//! ignores `SIGTERM` included), stopped before a re-exec and started again by the new image,
//! its stderr in the log, ended with a server that was killed, a program that writes without
//! pause held to bounded memory, and its
//! lines in the journal (`--store`), which compaction keeps from growing without bound.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{EventStream, ServerProcess, SseEvent, TempFile, TestServer, request, wait_for};

/// An open `/feeds/NAME/stream`, read message by message.
struct Feed(EventStream);

impl Feed {
    fn open(addr: SocketAddr, name: &str) -> Feed {
        let stream = EventStream::open_path(addr, &format!("/feeds/{name}/stream"), "");
        assert_eq!(stream.head.status, 200);
        Feed(stream)
    }

    /// The next message's text (as the feed's page shows it large), and when it came.
    fn next(&mut self) -> (String, Instant) {
        let (SseEvent { data, .. }, at) = self.0.next_event();
        let data = data.unwrap();
        let text = data
            .split_once(r#"<p class="newest">"#)
            .and_then(|(_, rest)| rest.split_once("</p>"))
            .unwrap_or_else(|| panic!("no newest text in {data}"))
            .0
            .to_owned();
        (text, at)
    }
}

fn server(programs: &[(&str, &str)], configure: impl FnOnce(&mut sse_htmx::Config)) -> TestServer {
    let exec = programs
        .iter()
        .map(|(feed, command)| (feed.to_string(), command.to_string()))
        .collect();
    TestServer::with(|c| {
        c.exec = exec;
        configure(c);
    })
}

#[test]
fn each_line_is_a_message_cut_to_the_longest_and_an_exit_starts_it_again_a_second_later() {
    let server = server(&[("ticks", "printf 'one\\n\\nabcdefghijklmnop\\n'")], |c| {
        c.max_message = 10
    });
    let mut feed = Feed::open(server.addr, "ticks");
    assert_eq!(feed.next().0, "one");
    let (cut, exited) = feed.next();
    assert_eq!(cut, "abcdefghi…", "cut with a marker, not refused");
    let (again, restarted) = feed.next();
    assert_eq!(
        again, "one",
        "the blank line is no message; then the next run"
    );
    let after = restarted - exited;
    assert!(after >= Duration::from_millis(900), "{after:?}");
    assert!(after < Duration::from_secs(3), "{after:?}");
}

#[test]
fn a_program_that_keeps_failing_fast_waits_twice_as_long_each_time() {
    let server = server(&[("failing", "echo run; exit 1")], |_| {});
    let mut feed = Feed::open(server.addr, "failing");
    let starts: Vec<Instant> = (0..3).map(|_| feed.next().1).collect();
    let (first, second) = (starts[1] - starts[0], starts[2] - starts[1]);
    assert!(
        first >= Duration::from_millis(900) && first < Duration::from_secs(2),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_millis(1900) && second < Duration::from_secs(4),
        "{second:?}"
    );
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet: it runs no more).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn the_server_stops_its_programs_and_what_they_started() {
    // The shell, a `sleep` it started in the background, and one that ignores SIGTERM (it gets
    // SIGKILL a second later).
    let server = server(
        &[
            ("calm", "echo $$; sleep 600 & echo $!; wait"),
            (
                "stubborn",
                "trap '' TERM; echo $$; while :; do sleep 0.1; done",
            ),
        ],
        |_| {},
    );
    let mut calm = Feed::open(server.addr, "calm");
    let mut stubborn = Feed::open(server.addr, "stubborn");
    let pids: Vec<u32> = [calm.next(), calm.next(), stubborn.next()]
        .iter()
        .map(|(text, _)| text.parse().expect("a pid"))
        .collect();
    assert!(pids.iter().all(|&pid| !ended(pid)));
    let stopping = Instant::now();
    server.stop().unwrap();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    for pid in pids {
        assert!(
            wait_for(Duration::from_secs(5), || ended(pid)),
            "{pid} still runs"
        );
    }
}

/// The shell of `a | b` ends at the stop's `SIGTERM`, so no `SIGKILL` follows for its group; a
/// `b` that ignores `SIGTERM` must not outlive the stop all the same.
#[test]
fn what_a_stopped_program_started_and_that_ignores_sigterm_ends_too() {
    // `\$\$`: the inner shell's id, not the outer one's.
    let stubborn = r"trap '' TERM; echo \$\$; while :; do sleep 0.1; done";
    let server = server(&[("piped", &format!("sh -c \"{stubborn}\" | cat"))], |_| {});
    let pid: u32 = Feed::open(server.addr, "piped")
        .next()
        .0
        .parse()
        .expect("a pid");
    assert!(!ended(pid));
    server.stop().unwrap();
    let gone = wait_for(Duration::from_secs(5), || ended(pid));
    if !gone {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status();
    }
    assert!(gone, "{pid} outlived the stop");
}

#[test]
fn a_second_signal_exits_at_once_and_takes_the_programs_with_it() {
    let stubborn = "stubborn=trap '' TERM; echo $$; while :; do sleep 0.1; done";
    let mut server = ServerProcess::start_logging(&["--exec", stubborn]);
    let pid: u32 = Feed::open(server.addr, "stubborn")
        .next()
        .0
        .parse()
        .expect("a pid");
    server.signal("TERM");
    // Again within the second the program is given after SIGTERM, once the first was taken: two
    // signals before the server sees the first are one.
    assert!(wait_for(Duration::from_secs(5), || {
        server
            .stderr_tail()
            .iter()
            .any(|line| line.contains("stopping"))
    }));
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exited");
    assert_eq!(status.code(), Some(128 + 15));
    let gone = wait_for(Duration::from_secs(2), || ended(pid));
    if !gone {
        let group = format!("-{pid}");
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
    }
    assert!(gone, "the program ({pid}) outlived the server");
}

/// A server that is killed (`SIGKILL`, the OOM killer) cannot stop its programs: they end by
/// themselves, with what they started, and a shell loop among them does not run on for good.
#[test]
fn the_programs_end_with_the_server_however_it_ends() {
    let calm = "calm=echo $$; sleep 600 & echo $!; while :; do sleep 1; done";
    let mut server = ServerProcess::start_logging(&["--exec", calm]);
    let mut feed = Feed::open(server.addr, "calm");
    let pids: Vec<u32> = [feed.next(), feed.next()]
        .iter()
        .map(|(text, _)| text.parse().expect("a pid"))
        .collect();
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(5)).expect("killed");
    let gone = wait_for(Duration::from_secs(5), || {
        pids.iter().all(|&pid| ended(pid))
    });
    if !gone {
        let group = format!("-{}", pids[0]);
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
    }
    assert!(gone, "the program ({pids:?}) outlived the server");
}

#[test]
fn stderr_goes_to_the_log_with_the_feeds_name() {
    // More than a pipe holds (64 KiB), so the server must keep reading while the program writes;
    // fewer lines than the log keeps for a reader that falls behind (4,096), so that none is
    // dropped however slowly this test reads the server's stderr.
    let server = ServerProcess::start_logging_all(&[
        "--exec",
        "noisy=sleep 0.09; seq -f 'oops %g of a line long enough for the pipe' 1 3000 >&2; echo out",
    ]);
    let exited = "exec noisy: exit status 0";
    assert!(
        wait_for(Duration::from_secs(10), || server.stderr().contains(exited)),
        "{}",
        server.stderr()
    );
    // Every line it wrote, before the line that says it exited.
    let log = server.stderr();
    let first_run = &log[..log.find(exited).unwrap()];
    for n in [1, 3000] {
        let line = format!("exec noisy: oops {n} of a line long enough for the pipe\n");
        assert!(first_run.contains(&line), "{log}");
    }
}

/// The messages published to `feed` so far, by the server's metrics.
fn published(addr: SocketAddr, feed: &str) -> u64 {
    let metrics = request(addr, "GET", "/metrics", "").text();
    let prefix = format!("feed_messages_published_total{{feed=\"{feed}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

/// The process's resident memory, in KiB.
fn resident_kib(server: &ServerProcess) -> u64 {
    server.status("VmRSS")
}

#[test]
fn a_program_that_writes_without_pause_is_held_to_bounded_memory() {
    let server = ServerProcess::start(&["--exec", "flood=yes a line of text that goes on and on"]);
    let addr = server.addr;
    // Without the pacing, the fan-out threads' queues grow by some 200 bytes a message here.
    // A stream that never reads: its client falls behind at once.
    let _stalled = EventStream::open_path(addr, "/feeds/flood/stream", "");
    let published = || published(addr, "flood");
    assert!(
        wait_for(Duration::from_secs(30), || published() >= 50_000),
        "published {}",
        published()
    );
    let after_many = resident_kib(&server);
    assert!(
        wait_for(Duration::from_secs(30), || published() >= 150_000),
        "published {}",
        published()
    );
    let after_three_times_as_many = resident_kib(&server);
    assert!(
        after_three_times_as_many < after_many + 16 * 1024
            && after_three_times_as_many < 128 * 1024,
        "{after_many} KiB, then {after_three_times_as_many} KiB"
    );
}

#[test]
fn a_reexec_stops_the_programs_and_the_new_image_starts_them_again() {
    let server = ServerProcess::start(&["--exec", "pids=echo $$; exec sleep 600"]);
    let addr = server.addr;
    let first: u32 = Feed::open(addr, "pids").next().0.parse().unwrap();
    server.signal("HUP");
    assert!(
        wait_for(Duration::from_secs(10), || ended(first)),
        "{first} runs on after the image was replaced"
    );
    // The new image carries the feed's messages over and starts the program again.
    let mut feed = Feed::open(addr, "pids");
    let mut texts = Vec::new();
    while !texts.iter().any(|text: &String| text != &first.to_string()) {
        texts.push(feed.next().0);
    }
    let second: u32 = texts.last().unwrap().parse().unwrap();
    assert!(!ended(second));
}

#[test]
fn a_programs_lines_are_journaled_and_a_fast_one_keeps_the_journal_bounded() {
    let store = TempFile::new("exec-store");
    let path = store.arg();
    let flood = "flood=yes a line of text that goes on and on";
    let history = ["--store", path, "--history", "50"];
    let mut server = ServerProcess::start_logging(&[&history[..], &["--exec", flood]].concat());
    let addr = server.addr;
    let published = || published(addr, "flood");
    // Some 70 bytes a record: 100,000 would be 7 MB of journal, never compacted.
    assert!(
        wait_for(Duration::from_secs(60), || published() >= 100_000),
        "published {}",
        published()
    );
    // The program goes on, and so do compactions: the next one's line comes while nothing
    // else is logged (the tail kept of the log is short, and the requests above fill it).
    let compacted = || {
        let line = format!("journal {path} compacted from");
        server.stderr_tail().iter().any(|l| l.contains(&line))
    };
    assert!(
        wait_for(Duration::from_secs(20), compacted),
        "{:?}",
        server.stderr_tail()
    );
    let len = std::fs::metadata(&store.0).unwrap().len();
    assert!(len < 2 * 1024 * 1024 + 16 * 1024, "{len} bytes");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());

    // Started again without the program, the feed is there with its newest lines.
    let server = ServerProcess::start(&history);
    let mut feed = Feed::open(server.addr, "flood");
    assert_eq!(feed.next().0, "a line of text that goes on and on");
}
