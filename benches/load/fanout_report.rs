//! What a fan-out run's report says: a table for people and one JSON line for tools per run,
//! and this server's runs side by side with a peer's.

use crate::fanout::FanoutReport;
use crate::footprint::ProcSample;
use crate::output::{Grid, Json, Table, number_text, pair_text, spread_text};

/// One figure of a [`ProcSample`].
type Read = fn(&ProcSample) -> u64;

/// The figures a fan-out report gives idle → held: JSON key, label, unit, reading.
const FIGURES: [(&str, &str, &str, Read); 5] = [
    ("rss_kib", "RSS", "KiB", |s| s.rss_kib),
    ("threads", "threads", "", |s| s.threads),
    ("mappings", "mappings", "", |s| s.mappings),
    ("fds", "open fds", "", |s| s.fds),
    (
        "kernel_stack_kib",
        "KernelStack (system-wide)",
        "KiB",
        |s| s.kernel_stack_kib,
    ),
];

/// (held − idle) / subscribers open at the end, for one figure.
fn per_subscriber(r: &FanoutReport, read: Read) -> Option<f64> {
    let (idle, held) = (r.idle?, r.held?);
    if r.held_at_end == 0 {
        return None;
    }
    Some((read(&held) as f64 - read(&idle) as f64) / r.held_at_end as f64)
}

/// A subscriber's share of the RSS plus its kernel stack, in KiB.
fn total_kib_per_subscriber(r: &FanoutReport) -> Option<f64> {
    Some(per_subscriber(r, |s| s.rss_kib)? + per_subscriber(r, |s| s.kernel_stack_kib)?)
}

fn ticks_ms(ticks: Option<u64>, r: &FanoutReport) -> Option<f64> {
    Some(ticks? as f64 * 1e3 / r.clock_ticks as f64)
}

/// Server CPU per delivered event over the window, in µs.
fn cpu_us_per_delivery(r: &FanoutReport) -> Option<f64> {
    if r.deliveries.delivered == 0 {
        return None;
    }
    Some(ticks_ms(r.cpu_ticks, r)? * 1e3 / r.deliveries.delivered as f64)
}

/// Of [`cpu_us_per_delivery`]: the fan-out threads' share, in µs per delivered event.
fn fan_out_us_per_delivery(r: &FanoutReport) -> Option<f64> {
    if r.deliveries.delivered == 0 || r.fan_out_ticks == 0 {
        return None;
    }
    Some(ticks_ms(Some(r.fan_out_ticks), r)? * 1e3 / r.deliveries.delivered as f64)
}

/// The process's CPU over the window that was spent by threads that started or ended in it.
fn passing_ticks(r: &FanoutReport) -> Option<u64> {
    Some(
        r.cpu_ticks?
            .saturating_sub(r.fan_out_ticks + r.lasting_ticks),
    )
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.2} %", part as f64 * 100.0 / whole as f64)
}

pub fn fanout_table(r: &FanoutReport) -> Table {
    let (o, d) = (&r.outcomes, &r.deliveries);
    let mut t = Table::new(format!(
        "fan-out: {}, {} subscribers, {} messages/s for {} s",
        r.server,
        r.subscribers,
        r.rate,
        r.publish.as_secs_f64()
    ));
    t.row(
        "subscribers ok / failed / not attempted",
        format!(
            "{} / {} / {}",
            o.ok,
            o.failed(),
            r.subscribers - o.attempted
        ),
    );
    t.row("failure reasons", o.failure_summary());
    t.row(
        "ready when publishing began / held at the end",
        format!("{} / {}", r.ready, r.held_at_end),
    );
    t.row(
        "ramp-up (to all heads)",
        format!("{:.2} s", r.ramp.as_secs_f64()),
    );
    t.row(
        "messages published / answered 2xx",
        format!("{} / {}", r.published, r.accepted),
    );
    if let Some(failure) = &r.first_publish_failure {
        t.row("first publish failure", failure.clone());
    }
    t.row("POST → answer p50 / p99 / max", spread_text(r.post, "ms"));
    t.row(
        "delivered / expected",
        format!(
            "{} / {} ({})",
            d.delivered,
            d.expected,
            percent(d.delivered, d.expected)
        ),
    );
    t.row(
        "messages that reached every subscriber",
        format!("{} / {}", d.messages_to_all, r.accepted),
    );
    t.row(
        "duplicates / out of order / unanswered / no token",
        format!(
            "{} / {} / {} / {}",
            d.duplicates, d.out_of_order, d.unanswered, d.without_token
        ),
    );
    t.row(
        "POST → arrival, all deliveries: p50 / p99 / max",
        spread_text(d.latency, "ms"),
    );
    t.row(
        "POST → last subscriber, per message: p50 / p99 / max",
        spread_text(d.last_arrival, "ms"),
    );
    for (_, label, unit, read) in FIGURES {
        let (idle, held) = (r.idle.as_ref().map(read), r.held.as_ref().map(read));
        t.row(
            &format!("server {label} idle → held"),
            pair_text(idle, held, unit),
        );
    }
    t.row(
        "per subscriber: RSS",
        number_text(per_subscriber(r, |s| s.rss_kib), 1, "KiB"),
    );
    t.row(
        "per subscriber: RSS + kernel stack",
        number_text(total_kib_per_subscriber(r), 1, "KiB"),
    );
    t.row(
        "server CPU over the window / window",
        format!(
            "{} / {:.1} s",
            number_text(ticks_ms(r.cpu_ticks, r), 0, "ms"),
            r.window.as_secs_f64()
        ),
    );
    t.row(
        "server CPU per delivered event",
        number_text(cpu_us_per_delivery(r), 1, "µs"),
    );
    t.row(
        "of it: fan-out threads, per delivered event",
        number_text(fan_out_us_per_delivery(r), 1, "µs"),
    );
    t.row(
        "of it: other threads / threads that started or ended",
        format!(
            "{} / {}",
            number_text(ticks_ms(Some(r.lasting_ticks), r), 0, "ms"),
            number_text(ticks_ms(passing_ticks(r), r), 0, "ms")
        ),
    );
    t.row(
        "client (this bench) CPU over the window",
        number_text(ticks_ms(r.client_cpu_ticks, r), 0, "ms"),
    );
    t.row("server alive at the end", r.server_alive.to_string());
    if !r.server_alive {
        t.row("server exit", r.server_exit.clone());
    }
    t
}

pub fn fanout_json(r: &FanoutReport) -> String {
    let (o, d) = (&r.outcomes, &r.deliveries);
    let mut j = Json::new("fanout");
    j.string("server", Some(&r.server));
    j.int("subscribers", r.subscribers as u64);
    j.int("rate", r.rate as u64);
    j.num("ramp_secs", Some(r.ramp.as_secs_f64()));
    j.int("attempted", o.attempted as u64);
    j.int("ok", o.ok as u64);
    j.int("failed", o.failed() as u64);
    for (why, count, _) in &o.failures {
        j.int(why.json_key(), *count as u64);
    }
    j.int("ready", r.ready as u64);
    j.int("held", r.held_at_end as u64);
    j.int("published", r.published as u64);
    j.int("answered", r.accepted as u64);
    j.spread("post_ms", r.post);
    j.int("delivered", d.delivered as u64);
    j.int("expected", d.expected as u64);
    j.int("messages_to_all", d.messages_to_all as u64);
    j.int("duplicates", d.duplicates as u64);
    j.int("out_of_order", d.out_of_order as u64);
    j.int("unanswered", d.unanswered as u64);
    j.int("without_token", d.without_token as u64);
    j.spread("latency_ms", d.latency);
    j.spread("last_subscriber_ms", d.last_arrival);
    for (key, _, _, read) in FIGURES {
        j.opt_int(&format!("{key}_idle"), r.idle.as_ref().map(read));
        j.opt_int(&format!("{key}_held"), r.held.as_ref().map(read));
    }
    j.num("rss_kib_per_subscriber", per_subscriber(r, |s| s.rss_kib));
    j.num("total_kib_per_subscriber", total_kib_per_subscriber(r));
    j.num("window_secs", Some(r.window.as_secs_f64()));
    j.num("cpu_ms", ticks_ms(r.cpu_ticks, r));
    j.num("cpu_us_per_delivery", cpu_us_per_delivery(r));
    j.num("fan_out_us_per_delivery", fan_out_us_per_delivery(r));
    j.num("lasting_threads_cpu_ms", ticks_ms(Some(r.lasting_ticks), r));
    j.num("passing_threads_cpu_ms", ticks_ms(passing_ticks(r), r));
    j.num("client_cpu_ms", ticks_ms(r.client_cpu_ticks, r));
    j.boolean("server_alive", r.server_alive);
    j.finish()
}

fn ratio(ours: Option<f64>, peer: Option<f64>) -> Option<f64> {
    let (ours, peer) = (ours?, peer?);
    (peer > 0.0).then(|| ours / peer)
}

/// This server's runs beside another's (a peer's, or several instances sharing the room through
/// Redis), one row per configuration both ran: the table, and one JSON line per row.
pub fn print_comparison(pairs: &[(&FanoutReport, &FanoutReport)]) {
    let Some((_, first_peer)) = pairs.first() else {
        return;
    };
    let peer = &first_peer.server;
    let mut grid = Grid::new(
        format!("fan-out: sse-htmx beside {peer} (ratio = sse-htmx / {peer})"),
        &[
            "subscribers",
            "msg/s",
            "delivered (ours / peer)",
            "POST → arrival p99 (ours / peer)",
            "ratio",
            "last subscriber p99 (ours / peer)",
            "CPU per delivered event (ours / peer)",
            "ratio",
            "RSS + kernel stack per subscriber (ours / peer)",
            "POST → answer p99 (ours / peer)",
        ],
    );
    let mut lines = Vec::new();
    for (ours, theirs) in pairs {
        let both = |f: &dyn Fn(&FanoutReport) -> Option<f64>, decimals: usize, unit: &str| {
            format!(
                "{} / {}",
                number_text(f(ours), decimals, ""),
                number_text(f(theirs), decimals, unit)
            )
        };
        let p99 = |r: &FanoutReport| r.deliveries.latency.map(|s| s.p99);
        let last_p99 = |r: &FanoutReport| r.deliveries.last_arrival.map(|s| s.p99);
        let post_p99 = |r: &FanoutReport| r.post.map(|s| s.p99);
        let latency_ratio = ratio(p99(ours), p99(theirs));
        let cpu_ratio = ratio(cpu_us_per_delivery(ours), cpu_us_per_delivery(theirs));
        grid.row(vec![
            ours.subscribers.to_string(),
            ours.rate.to_string(),
            format!(
                "{} / {}",
                percent(ours.deliveries.delivered, ours.deliveries.expected),
                percent(theirs.deliveries.delivered, theirs.deliveries.expected)
            ),
            both(&p99, 2, "ms"),
            number_text(latency_ratio, 2, "×"),
            both(&last_p99, 2, "ms"),
            both(&cpu_us_per_delivery, 1, "µs"),
            number_text(cpu_ratio, 2, "×"),
            both(&total_kib_per_subscriber, 1, "KiB"),
            both(&post_p99, 2, "ms"),
        ]);
        let mut j = Json::new("fanout_compare");
        j.string("peer", Some(peer));
        j.int("subscribers", ours.subscribers as u64);
        j.int("rate", ours.rate as u64);
        j.num("latency_p99_ratio", latency_ratio);
        j.num(
            "last_subscriber_p99_ratio",
            ratio(last_p99(ours), last_p99(theirs)),
        );
        j.num("cpu_per_delivery_ratio", cpu_ratio);
        lines.push(j.finish());
    }
    grid.print();
    lines.iter().for_each(|line| println!("{line}"));
}
