//! What a scenario's report says: a table for people and one JSON line for tools, with the
//! per-stream costs derived from the /proc figures.

use crate::footprint::{FIGURES, ProcSample};
use crate::output::{Json, Table, number_text, pair_text, spread_text};
use crate::scenarios::{BurstReport, HoldReport};

/// (held − idle) / streams held, for one figure. The divisor is the streams actually open when
/// the held sample was taken, which is N unless some failed.
fn per_stream(report: &HoldReport, read: fn(&ProcSample) -> u64) -> Option<f64> {
    let (idle, held) = (report.idle?, report.held?);
    if report.held_streams == 0 {
        return None;
    }
    Some((read(&held) as f64 - read(&idle) as f64) / report.held_streams as f64)
}

/// What a held stream costs in memory: its share of the RSS plus its kernel stack, in KiB.
fn total_kib_per_stream(report: &HoldReport) -> Option<f64> {
    let rss = per_stream(report, |s| s.rss_kib)?;
    let kernel_stack = per_stream(report, |s| s.kernel_stack_kib)?;
    Some(rss + kernel_stack)
}

fn ticks_to_ms(ticks: Option<u64>, clock_ticks: u64) -> Option<f64> {
    Some(ticks? as f64 * 1e3 / clock_ticks as f64)
}

fn cpu_ms(report: &HoldReport) -> Option<f64> {
    ticks_to_ms(report.cpu_ticks, report.clock_ticks)
}

fn client_cpu_ms(report: &HoldReport) -> Option<f64> {
    ticks_to_ms(report.client_cpu_ticks, report.clock_ticks)
}

/// Server CPU per event delivered during the hold, in µs.
fn cpu_us_per_event(report: &HoldReport) -> Option<f64> {
    if report.events_in_hold == 0 {
        return None;
    }
    Some(cpu_ms(report)? * 1e3 / report.events_in_hold as f64)
}

pub fn hold_table(r: &HoldReport) -> Table {
    let o = &r.outcomes;
    let mut t = Table::new(format!(
        "hold {} streams, {} (interval {} ms, held {:.1} s)",
        r.streams,
        r.target.name(),
        r.interval.as_millis(),
        r.hold.as_secs_f64()
    ));
    let not_attempted = r.streams - o.attempted;
    t.row(
        "streams ok / failed / not attempted",
        format!("{} / {} / {not_attempted}", o.ok, o.failed()),
    );
    t.row("failure reasons", o.failure_summary());
    t.row("dropped after first event", o.dropped.to_string());
    t.row("held at the end", r.held_streams.to_string());
    t.row(
        "ramp-up (to all first events)",
        format!("{:.2} s", r.ramp.as_secs_f64()),
    );
    t.row(
        "connect → first event p50 / p99 / max",
        spread_text(r.first_event, "ms"),
    );
    for (label, lateness) in [
        ("all events", &r.lateness),
        ("hold window only", &r.lateness_in_hold),
    ] {
        t.row(
            &format!("lateness, {label}: p50 / p99 / max"),
            spread_text(lateness.spread, "ms"),
        );
        t.row(
            &format!("lateness, {label}: events / early (as 0)"),
            format!("{} / {}", lateness.events, lateness.early),
        );
    }
    for f in &FIGURES {
        let (idle, held) = (r.idle.as_ref().map(f.read), r.held.as_ref().map(f.read));
        t.row(
            &format!("server {} idle → held", f.label),
            pair_text(idle, held, f.unit),
        );
    }
    for f in &FIGURES {
        let decimals = if f.unit.is_empty() { 2 } else { 1 };
        let value = number_text(per_stream(r, f.read), decimals, f.unit);
        t.row(&format!("per stream: {}", f.label), value);
    }
    t.row(
        "per stream: RSS + kernel stack",
        number_text(total_kib_per_stream(r), 1, "KiB"),
    );
    t.row(
        "server CPU over the hold / events",
        format!("{} / {}", number_text(cpu_ms(r), 0, "ms"), r.events_in_hold),
    );
    t.row(
        "server CPU per event",
        number_text(cpu_us_per_event(r), 1, "µs"),
    );
    t.row(
        "client (this bench) CPU over the hold",
        number_text(client_cpu_ms(r), 0, "ms"),
    );
    t.row(
        "POST /ping sent / failed",
        format!("{} / {}", r.ping.sent, r.ping.failures),
    );
    if let Some(failure) = &r.ping.first_failure {
        t.row("POST /ping first failure", failure.clone());
    }
    t.row(
        "POST /ping p50 / p99 / max",
        spread_text(r.ping.spread(), "ms"),
    );
    t.row("server alive at the end", r.server_alive.to_string());
    if !r.server_alive {
        t.row("server exit", r.server_exit.clone());
    }
    t
}

pub fn hold_json(r: &HoldReport) -> String {
    let o = &r.outcomes;
    let mut j = Json::new("hold");
    j.string("server", Some(r.target.name()));
    j.int("streams", r.streams as u64);
    j.int("interval_ms", r.interval.as_millis() as u64);
    j.num("hold_secs", Some(r.hold.as_secs_f64()));
    j.num("ramp_secs", Some(r.ramp.as_secs_f64()));
    j.int("attempted", o.attempted as u64);
    j.int("ok", o.ok as u64);
    j.int("failed", o.failed() as u64);
    for (why, count, _) in &o.failures {
        j.int(why.json_key(), *count as u64);
    }
    j.int("dropped", o.dropped as u64);
    j.int("held", r.held_streams as u64);
    j.spread("first_event_ms", r.first_event);
    j.spread("lateness_ms", r.lateness.spread);
    j.int("lateness_samples", r.lateness.events as u64);
    j.int("lateness_early", r.lateness.early as u64);
    j.spread("lateness_hold_ms", r.lateness_in_hold.spread);
    j.int("lateness_hold_samples", r.lateness_in_hold.events as u64);
    j.int("lateness_hold_early", r.lateness_in_hold.early as u64);
    for f in &FIGURES {
        j.opt_int(&format!("{}_idle", f.json), r.idle.as_ref().map(f.read));
        j.opt_int(&format!("{}_held", f.json), r.held.as_ref().map(f.read));
        j.num(&format!("{}_per_stream", f.json), per_stream(r, f.read));
    }
    j.num("total_kib_per_stream", total_kib_per_stream(r));
    j.num("cpu_ms", cpu_ms(r));
    j.int("events_in_hold", r.events_in_hold as u64);
    j.num("cpu_us_per_event", cpu_us_per_event(r));
    j.num("client_cpu_ms", client_cpu_ms(r));
    j.int("ping_sent", r.ping.sent as u64);
    j.int("ping_failed", r.ping.failures as u64);
    j.spread("ping_ms", r.ping.spread());
    j.boolean("server_alive", r.server_alive);
    j.finish()
}

fn burst_cpu_us_per_connection(r: &BurstReport) -> Option<f64> {
    let ms = ticks_to_ms(r.cpu_ticks, r.clock_ticks)?;
    Some(ms * 1e3 / r.connections.max(1) as f64)
}

pub fn burst_table(r: &BurstReport) -> Table {
    let o = &r.outcomes;
    let mut t = Table::new(format!(
        "burst of {} connections, {} (waited {:.1} s)",
        r.connections,
        r.target.name(),
        r.waited.as_secs_f64()
    ));
    t.row("got a first event", o.ok.to_string());
    t.row(
        "stranded (no first event, no answer)",
        o.stranded.to_string(),
    );
    t.row("failed", o.failed().to_string());
    t.row("failure reasons", o.failure_summary());
    t.row("dropped after first event", o.dropped.to_string());
    t.row(
        "connect → first event p50 / p99 / max",
        spread_text(r.first_event, "ms"),
    );
    t.row(
        "server CPU per connection, until the last first event",
        number_text(burst_cpu_us_per_connection(r), 0, "µs"),
    );
    t.row("server alive at the end", r.server_alive.to_string());
    if !r.server_alive {
        t.row("server exit", r.server_exit.clone());
    }
    t
}

pub fn burst_json(r: &BurstReport) -> String {
    let o = &r.outcomes;
    let mut j = Json::new("burst");
    j.string("server", Some(r.target.name()));
    j.int("connections", r.connections as u64);
    j.num("waited_secs", Some(r.waited.as_secs_f64()));
    j.int("first_event", o.ok as u64);
    j.int("stranded", o.stranded as u64);
    j.int("failed", o.failed() as u64);
    for (why, count, _) in &o.failures {
        j.int(why.json_key(), *count as u64);
    }
    j.int("dropped", o.dropped as u64);
    j.spread("first_event_ms", r.first_event);
    j.num("cpu_us_per_connection", burst_cpu_us_per_connection(r));
    j.boolean("server_alive", r.server_alive);
    j.finish()
}
