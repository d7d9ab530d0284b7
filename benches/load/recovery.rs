//! What the storm scenario concludes from what it recorded: the ids a page saw and whether any
//! was skipped or repeated, when a condition came back for good, when `POST /ping` was quick
//! again, how many times the server re-executed, and a figure of `/metrics`.
//!
//! Plain functions of plain data that use nothing but `std`, so `tests/load_recovery.rs`
//! includes this file with `#[path]` and tests it.

/// The ids of the events in `text` (whole events of an event stream, such as one chunk) that
/// carry both an `id:` and a `data:` field, in order. Keep-alive comments and `retry:` alone
/// are not events; an id that is not a decimal number is left out.
pub fn event_ids(text: &str) -> Vec<u64> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split("\n\n")
        .filter_map(|event| {
            let mut id = None;
            let mut data = false;
            for line in event.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = value.parse().ok(),
                    "data" => data = true,
                    _ => {}
                }
            }
            id.filter(|_| data)
        })
        .collect()
}

/// How far a page's ids are from going up one at a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuity {
    /// Ids missing between two that were seen.
    pub skipped: u64,
    /// Ids seen again, or that went back.
    pub repeated: u64,
}

impl Continuity {
    pub fn of(ids: &[u64]) -> Continuity {
        let mut continuity = Continuity::default();
        for pair in ids.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            if after <= before {
                continuity.repeated += 1;
            } else {
                continuity.skipped += after - before - 1;
            }
        }
        continuity
    }
}

/// Given samples in time order (seconds since the storm's end, and whether the condition held),
/// the time of the first sample from which on it always held: a condition that came back and
/// went away again (a re-exec after the first) is not back yet. `None` if the last sample fails
/// or there is none.
pub fn back_for_good(samples: &[(f64, bool)]) -> Option<f64> {
    let failed_last = samples.iter().rposition(|&(_, good)| !good);
    let first_good = failed_last.map_or(0, |index| index + 1);
    samples.get(first_good).map(|&(at, _)| at)
}

/// One `POST /ping`: when it was sent (seconds since the storm's end, negative before it), and
/// how long its answer took in ms; `None` if it failed.
#[derive(Clone, Copy, Debug)]
pub struct Ping {
    pub at: f64,
    pub latency_ms: Option<f64>,
}

/// The pings sent in a span of time: how many, and how long those answered took (ms).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answered {
    pub sent: usize,
    pub latencies_ms: Vec<f64>,
}

impl Answered {
    /// The pings sent from `from` (included) to `to` (excluded).
    pub fn between(pings: &[Ping], from: f64, to: f64) -> Answered {
        let sent: Vec<&Ping> = pings
            .iter()
            .filter(|ping| ping.at >= from && ping.at < to)
            .collect();
        Answered {
            sent: sent.len(),
            latencies_ms: sent.iter().filter_map(|ping| ping.latency_ms).collect(),
        }
    }
}

/// The first ping sent at or after the storm's end (time 0) from which the pings of the next
/// `window` seconds were all answered with a p99 (nearest rank) under `limit_ms`. A window
/// counts only once a ping was sent after it, so that it is complete. `None` if no window
/// qualifies yet.
pub fn quick_again(pings: &[Ping], window: f64, limit_ms: f64) -> Option<f64> {
    let after = &pings[pings.partition_point(|ping| ping.at < 0.0)..];
    (0..after.len()).find_map(|start| {
        let from = after[start].at;
        let end = after[start..]
            .iter()
            .position(|ping| ping.at >= from + window)?;
        let mut latencies: Vec<f64> = after[start..start + end]
            .iter()
            .map(|ping| ping.latency_ms.unwrap_or(f64::INFINITY))
            .collect();
        (p99(&mut latencies) < limit_ms).then_some(from)
    })
}

/// The 99th percentile by nearest rank; infinite for no samples.
fn p99(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return f64::INFINITY;
    }
    samples.sort_by(f64::total_cmp);
    let rank = (0.99 * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// What the server writes on stderr each time it re-executes to drop the connections held for
/// good.
pub const REEXEC_LINE: &str = "re-executing to drop them";

/// How many times the server's log says it re-executed to heal.
pub fn reexecs_in(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains(REEXEC_LINE))
        .count()
}

/// The value of the metric `name` without labels in a Prometheus text exposition.
pub fn metric_value(exposition: &str, name: &str) -> Option<u64> {
    exposition.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}
