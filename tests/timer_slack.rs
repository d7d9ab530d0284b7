//! A counter stream's thread lets its waits end up to a thousandth of its interval late (at most
//! 1 ms, at least the kernel's default 50 µs), so that the kernel can wake thousands of streams
//! on fewer timer interrupts. Alone in its test binary so that no other test's streams are read.

mod common;

use std::time::Duration;

use common::{EventStream, TestServer};

/// The timer slack of every stream thread of this process, in nanoseconds, smallest first.
fn stream_thread_slacks() -> Vec<u64> {
    let mut slacks: Vec<u64> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).ok()?;
            // Only /proc/TID has it, not /proc/self/task/TID.
            let tid = task.file_name()?.to_str()?.to_owned();
            let slack = std::fs::read_to_string(format!("/proc/{tid}/timerslack_ns")).ok()?;
            (name.trim_end() == "sse-stream").then(|| slack.trim().parse().expect("a number"))
        })
        .collect();
    slacks.sort_unstable();
    slacks
}

#[test]
fn a_counter_streams_thread_may_wake_a_thousandth_of_its_interval_late() {
    let intervals = [1000, 200, 20].map(Duration::from_millis);
    let servers: Vec<TestServer> = intervals.iter().map(|&i| TestServer::start(i)).collect();
    let mut streams: Vec<EventStream> = servers
        .iter()
        .map(|server| EventStream::open(server.addr))
        .collect();
    for stream in &mut streams {
        stream.next_event();
    }
    // 1 s: capped at 1 ms; 200 ms: 200 µs; 20 ms: 20 µs, raised to the default 50 µs.
    assert_eq!(stream_thread_slacks(), [50_000, 200_000, 1_000_000]);
}
