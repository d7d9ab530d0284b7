//! What the load benchmark's storm scenario concludes from what it recorded: the ids of a page,
//! whether any was skipped or repeated, when a condition came back for good, when `POST /ping`
//! was quick again, the re-execs in the server's log and a figure of `/metrics`. The bench
//! (`harness = false`) cannot run tests, so this file includes its module.

#[path = "../benches/load/recovery.rs"]
mod recovery;

use recovery::{
    Answered, Continuity, Ping, REEXEC_LINE, back_for_good, event_ids, metric_value, quick_again,
    reexecs_in,
};

#[test]
fn ids_come_from_events_with_data_only() {
    // As the server writes them: event 0 with `retry:`, a keep-alive comment, event 1.
    let text = "id: 0\nretry: 2000\ndata: <p>This is 0.</p>\n\n: keep-alive\n\n\
                id: 1\ndata: <p>This is 1.</p>\n\n";
    assert_eq!(event_ids(text), [0, 1]);
    assert_eq!(
        event_ids("id: 7\r\ndata: x\r\n\r\nid:8\rdata:y\r\r"),
        [7, 8]
    );
    assert_eq!(event_ids("id: 3\n\n"), Vec::<u64>::new(), "no data");
    assert_eq!(event_ids("data: x\n\n"), Vec::<u64>::new(), "no id");
    assert_eq!(
        event_ids("id: x1\ndata: x\n\n"),
        Vec::<u64>::new(),
        "not a number"
    );
    assert_eq!(event_ids(": keep-alive\n\n"), Vec::<u64>::new());
    assert_eq!(event_ids(""), Vec::<u64>::new());
}

#[test]
fn continuity_counts_ids_skipped_and_repeated() {
    assert_eq!(Continuity::of(&[]), Continuity::default());
    assert_eq!(Continuity::of(&[4]), Continuity::default());
    assert_eq!(Continuity::of(&[4, 5, 6, 7]), Continuity::default());
    let skipped = Continuity::of(&[1, 2, 5, 6, 8]);
    assert_eq!((skipped.skipped, skipped.repeated), (3, 0));
    // A stream resumed from an id before the last one seen repeats what follows it.
    let repeated = Continuity::of(&[1, 2, 3, 2, 3, 4, 4]);
    assert_eq!((repeated.skipped, repeated.repeated), (0, 2));
}

#[test]
fn back_for_good_is_the_first_sample_from_which_on_all_held() {
    assert_eq!(back_for_good(&[]), None);
    assert_eq!(back_for_good(&[(0.0, true), (0.1, true)]), Some(0.0));
    assert_eq!(back_for_good(&[(0.0, false), (0.1, true)]), Some(0.1));
    // Back at 0.1, gone again at 0.2 (another re-exec), back for good at 0.3.
    let samples = [
        (0.0, false),
        (0.1, true),
        (0.2, false),
        (0.3, true),
        (0.4, true),
    ];
    assert_eq!(back_for_good(&samples), Some(0.3));
    assert_eq!(back_for_good(&[(0.0, true), (0.1, false)]), None);
}

/// Pings every 50 ms from `from` to `to` (seconds since the storm's end), each answered in
/// `latency(at)` ms.
fn pings(from: f64, to: f64, latency: impl Fn(f64) -> Option<f64>) -> Vec<Ping> {
    let count = ((to - from) / 0.05).round() as usize;
    (0..count)
        .map(|i| {
            let at = from + i as f64 * 0.05;
            Ping {
                at,
                latency_ms: latency(at),
            }
        })
        .collect()
}

#[test]
fn ping_is_quick_again_at_the_first_complete_window_under_the_limit() {
    // Slow during the storm and until 1 s after it, quick from then on.
    let record = pings(-3.0, 6.0, |at| Some(if at < 1.0 { 500.0 } else { 5.0 }));
    let back = quick_again(&record, 2.0, 100.0).unwrap();
    assert!((back - 1.0).abs() < 1e-6, "{back}");
    // Quick before and after the storm: back at the first ping after it.
    let record = pings(-1.0, 3.0, |_| Some(5.0));
    assert_eq!(quick_again(&record, 2.0, 100.0), Some(record[20].at));
}

#[test]
fn a_failed_or_slow_ping_spoils_its_window() {
    // One failure at 1.5 s: no window that holds it qualifies.
    let record = pings(0.0, 5.0, |at| (!(1.49..1.51).contains(&at)).then_some(5.0));
    let back = quick_again(&record, 2.0, 100.0).unwrap();
    assert!((back - 1.55).abs() < 1e-6, "{back}");
    // The p99 of 40 pings is the slowest of them.
    let record = pings(0.0, 5.0, |at| {
        Some(if (0.49..0.51).contains(&at) {
            100.0
        } else {
            5.0
        })
    });
    let back = quick_again(&record, 2.0, 100.0).unwrap();
    assert!((back - 0.55).abs() < 1e-6, "{back}");
}

#[test]
fn no_window_without_pings_after_it() {
    assert_eq!(quick_again(&[], 2.0, 100.0), None);
    // Quick, but not yet for a whole window.
    assert_eq!(
        quick_again(&pings(0.0, 1.9, |_| Some(1.0)), 2.0, 100.0),
        None
    );
    // Only pings before the storm's end.
    assert_eq!(
        quick_again(&pings(-5.0, 0.0, |_| Some(1.0)), 2.0, 100.0),
        None
    );
    // Never quick.
    assert_eq!(quick_again(&pings(0.0, 9.0, |_| None), 2.0, 100.0), None);
}

#[test]
fn reexecs_are_counted_from_the_servers_log() {
    let log = "POST /ping 200 2B 0.3ms\n\
               40 connections held for good by tiny_http (budget 32); re-executing to drop \
               them (re-exec 1 in a row)\n\
               35 connections held for good by tiny_http (budget 32); re-executing in 1.0s, \
               after the last re-exec\n\
               35 connections held for good by tiny_http (budget 32); re-executing to drop \
               them (re-exec 2 in a row)\n";
    assert_eq!(reexecs_in(log), 2);
    assert_eq!(reexecs_in(""), 0);
    assert!(REEXEC_LINE.starts_with("re-executing"));
}

#[test]
fn a_metric_is_read_by_its_exact_name() {
    let exposition = "# HELP http_held_unrecoverable Connections whose thread ...\n\
                      # TYPE http_held_unrecoverable gauge\n\
                      http_held_unrecoverable 17\n\
                      http_held_unrecoverable_total 99\n\
                      http_requests_total{route=\"/\",status=\"200\"} 2\n";
    assert_eq!(
        metric_value(exposition, "http_held_unrecoverable"),
        Some(17)
    );
    assert_eq!(metric_value(exposition, "http_requests_total"), None);
    assert_eq!(metric_value("", "http_held_unrecoverable"), None);
    assert_eq!(
        metric_value("http_held_unrecoverable x\n", "http_held_unrecoverable"),
        None
    );
}

#[test]
fn the_reexec_line_is_the_one_the_server_writes() {
    // The server's log line is its only count of re-execs; a change of wording must show here.
    assert!(include_str!("../src/tiny/sweep.rs").contains(REEXEC_LINE));
}

#[test]
fn pings_between_two_times_with_their_answers() {
    let record = pings(-1.0, 1.0, |at| (at < 0.5).then_some(at + 2.0));
    let storm = Answered::between(&record, -0.5, 0.0);
    assert_eq!(storm.sent, 10);
    assert_eq!(storm.latencies_ms.len(), 10);
    assert!((storm.latencies_ms[0] - 1.5).abs() < 1e-6);
    let after = Answered::between(&record, 0.0, 1.0);
    assert_eq!(
        (after.sent, after.latencies_ms.len()),
        (20, 10),
        "failed from 0.5 s on"
    );
    assert_eq!(Answered::between(&record, 5.0, 6.0), Answered::default());
}
