//! What the storm scenario's report says: a table for people and one JSON line for tools.

use crate::output::{Json, Table, spread_text};
use crate::recovery::Answered;
use crate::stats::Spread;
use crate::storm::{PageReport, QUICK_MS, SLACK, StormReport, WINDOW};
use crate::storm_traffic::SHAPES;

/// Seconds after the storm's end, or that it was not back when the run gave up.
fn seconds(back: Option<f64>) -> String {
    back.map_or_else(|| "not back".into(), |secs| format!("{secs:.2} s"))
}

fn limit(nofile: u64) -> String {
    match nofile {
        0 => "inherited".into(),
        n => n.to_string(),
    }
}

fn page_text(page: &PageReport) -> String {
    let c = page.continuity;
    let s = &page.seen;
    format!(
        "{} ids over {} connections ({} ended cleanly, {} broken), {} skipped, {} repeated",
        s.ids.len(),
        s.connections,
        s.clean_ends,
        s.broken,
        c.skipped,
        c.repeated
    )
}

fn spread(pings: &Answered) -> Option<Spread> {
    Spread::of(&mut pings.latencies_ms.clone())
}

fn answered_text(pings: &Answered) -> String {
    format!("{} / {}", pings.latencies_ms.len(), pings.sent)
}

pub fn storm_table(r: &StormReport) -> Table {
    let mut t = Table::new(format!(
        "storm of {} × {} requests (server open-file limit {})",
        SHAPES.len(),
        r.per_shape,
        limit(r.nofile)
    ));
    t.row(
        "storm connections opened / failed",
        format!("{} / {}", r.opened, r.failed),
    );
    if let Some(why) = &r.first_failure {
        t.row("first storm failure", why.clone());
    }
    t.row("storm duration", format!("{:.2} s", r.storm.as_secs_f64()));
    t.row(
        "pings answered / sent during the storm",
        answered_text(&r.pings_in_storm),
    );
    t.row(
        "ping latency during the storm (p50 / p99 / max)",
        spread_text(spread(&r.pings_in_storm), "ms"),
    );
    t.row(
        "pings answered / sent from the storm's start until all back",
        answered_text(&r.pings_until_back),
    );
    t.row(
        "ping latency until all back (p50 / p99 / max)",
        spread_text(spread(&r.pings_until_back), "ms"),
    );
    t.row("re-execs", r.reexecs.to_string());
    t.row(
        "highest http_held_unrecoverable after the storm",
        r.held_peak.map_or("no answer".into(), |n| n.to_string()),
    );
    t.row("after the storm: /healthz answers", seconds(r.healthz_back));
    t.row(
        &format!("after the storm: threads and fds within {SLACK}"),
        seconds(r.footprint_back),
    );
    t.row(
        &format!(
            "after the storm: ping p99 over {} s < {QUICK_MS} ms",
            WINDOW.as_secs()
        ),
        seconds(r.ping_back),
    );
    let after = r
        .after
        .map_or("gone".into(), |(threads, fds)| format!("{threads} / {fds}"));
    t.row(
        "threads / fds before the storm and at the end",
        format!("{} / {} and {after}", r.before.0, r.before.1),
    );
    t.row("counter page", page_text(&r.counter));
    t.row("chat page", page_text(&r.chat));
    for (name, page) in [("counter", &r.counter), ("chat", &r.chat)] {
        if let Some(why) = &page.seen.first_broken {
            t.row(&format!("{name} page: first broken stream"), why.clone());
        }
    }
    t.row(
        "message published after the storm arrived",
        r.published_after_arrived.to_string(),
    );
    t.row("server alive at the end", r.server_alive.to_string());
    if !r.server_alive {
        t.row("server exit", r.server_exit.clone());
    }
    t
}

pub fn storm_json(r: &StormReport) -> String {
    let mut json = Json::new("storm");
    json.int("per_shape", r.per_shape as u64);
    json.int("server_nofile", r.nofile);
    json.int("opened", r.opened as u64);
    json.int("failed", r.failed as u64);
    json.num("storm_s", Some(r.storm.as_secs_f64()));
    for (name, pings) in [
        ("storm", &r.pings_in_storm),
        ("until_back", &r.pings_until_back),
    ] {
        json.int(&format!("pings_sent_{name}"), pings.sent as u64);
        json.int(
            &format!("pings_answered_{name}"),
            pings.latencies_ms.len() as u64,
        );
        json.spread(&format!("ping_ms_{name}"), spread(pings));
    }
    json.int("reexecs", r.reexecs as u64);
    json.opt_int("held_peak", r.held_peak);
    json.num("healthz_back_s", r.healthz_back);
    json.num("footprint_back_s", r.footprint_back);
    json.num("ping_back_s", r.ping_back);
    for (name, page) in [("counter", &r.counter), ("chat", &r.chat)] {
        json.int(&format!("{name}_ids"), page.seen.ids.len() as u64);
        json.int(&format!("{name}_skipped"), page.continuity.skipped);
        json.int(&format!("{name}_repeated"), page.continuity.repeated);
        json.int(&format!("{name}_connections"), page.seen.connections as u64);
    }
    json.boolean("published_after_arrived", r.published_after_arrived);
    json.boolean("server_alive", r.server_alive);
    json.finish()
}
