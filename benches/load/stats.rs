//! Statistics over what the client recorded: percentiles, how each connection ended, and how
//! late the events came.

use std::time::{Duration, Instant};

use crate::client::{Client, Failure, Phase};

/// Percentiles of a set of samples (nearest rank).
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(samples: &mut [f64]) -> Option<Spread> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        };
        Some(Spread {
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        })
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// How every connection of a scenario ended up.
pub struct Outcomes {
    pub attempted: usize,
    /// Got their first event.
    pub ok: usize,
    /// Got their first event, then ended before the scenario did.
    pub dropped: usize,
    /// Still waiting for their first event at the end.
    pub stranded: usize,
    /// Per [`Failure::ALL`]: how many, and the first detail seen.
    pub failures: Vec<(Failure, usize, Option<String>)>,
}

impl Outcomes {
    pub fn of(client: &Client) -> Outcomes {
        let mut failures: Vec<(Failure, usize, Option<String>)> =
            Failure::ALL.iter().map(|&why| (why, 0, None)).collect();
        for conn in &client.conns {
            if let Phase::Failed { why, detail } = &conn.phase
                && let Some(entry) = failures.iter_mut().find(|(f, _, _)| f == why)
            {
                entry.1 += 1;
                entry.2.get_or_insert_with(|| detail.clone());
            }
        }
        Outcomes {
            attempted: client.opened(),
            ok: client.count(|phase| matches!(phase, Phase::Streaming | Phase::Ended)),
            dropped: client.count(|phase| matches!(phase, Phase::Ended)),
            stranded: client.pending(),
            failures,
        }
    }

    pub fn failed(&self) -> usize {
        self.failures.iter().map(|(_, count, _)| count).sum()
    }

    /// `503: 12 (detail); connect error: 3 (detail)`, or `none`.
    pub fn failure_summary(&self) -> String {
        let parts: Vec<String> = self
            .failures
            .iter()
            .filter(|(_, count, _)| *count > 0)
            .map(|(why, count, detail)| match detail {
                Some(detail) if detail != why.label() => {
                    format!("{}: {count} (first: {detail})", why.label())
                }
                _ => format!("{}: {count}", why.label()),
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Connect-to-first-event times of the streams that got one, in ms.
pub fn first_event_spread(client: &Client) -> Option<Spread> {
    let mut samples: Vec<f64> = client
        .conns
        .iter()
        .filter_map(|conn| Some(ms(*conn.arrivals.first()? - conn.started)))
        .collect();
    Spread::of(&mut samples)
}

pub struct Lateness {
    pub spread: Option<Spread>,
    pub events: usize,
    /// Events that came before their slot (clamped to 0 in the spread).
    pub early: usize,
}

/// Lateness of event k ≥ 1 of each stream: arrival − (first arrival + k × interval). The first
/// event anchors the stream's schedule, so a server that delivers every event with the same delay
/// shows none; `k` counts the events received, so a slot the server skipped shows up as a full
/// interval of lateness, which is what a client lives through. Only events for which `counted`
/// says yes (by arrival) are included.
pub fn lateness(
    client: &Client,
    interval: Duration,
    counted: impl Fn(Instant) -> bool,
) -> Lateness {
    let mut samples = Vec::new();
    let mut early = 0;
    for conn in &client.conns {
        let Some(&first) = conn.arrivals.first() else {
            continue;
        };
        for (k, &arrival) in conn.arrivals.iter().enumerate().skip(1) {
            if !counted(arrival) {
                continue;
            }
            let due = first + interval * k as u32;
            match arrival.checked_duration_since(due) {
                Some(late) => samples.push(ms(late)),
                None => {
                    early += 1;
                    samples.push(0.0);
                }
            }
        }
    }
    Lateness {
        events: samples.len(),
        spread: Spread::of(&mut samples),
        early,
    }
}

pub fn events_between(client: &Client, from: Instant, to: Instant) -> usize {
    client
        .conns
        .iter()
        .flat_map(|conn| &conn.arrivals)
        .filter(|&&arrival| arrival >= from && arrival < to)
        .count()
}
