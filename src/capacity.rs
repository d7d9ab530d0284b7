//! How many streams this host can hold, from its real limits.
//!
//! Each stream is one thread and, once tiny_http's pool thread has let go of it, one descriptor.
//! Running out of either inside tiny_http is fatal (a failed thread spawn there panics and the
//! process aborts; a failed accept stops its accept thread), so the server refuses streams with
//! `503` well before any limit is reached.

use std::fmt;
use std::fs;

/// Memory mappings one stream thread adds: its stack and guard page, and the alternate signal
/// stack and guard page that Rust gives every thread (measured on Linux: 4).
const MAPPINGS_PER_STREAM: u64 = 4;
/// Descriptors one stream holds once tiny_http's pool thread has let go of its read half (see
/// `socket::release_read_half`); a connection holds two before that, for a moment.
const FDS_PER_STREAM: u64 = 1;
/// Left for everything that is not a stream: page requests, idle keep-alive connections and
/// tiny_http's pool threads, connections of a burst not yet released, the allocator's arenas,
/// the binary's own mappings.
const RESERVE_FDS: u64 = 1024;
const RESERVE_MAPPINGS: u64 = 2048;
const RESERVE_THREADS: u64 = 256;

/// The host's limits as read at start.
#[derive(Clone, Debug)]
pub struct Limits {
    pub open_files: u64,
    pub open_files_hard: u64,
    pub max_map_count: Option<u64>,
    pub threads_max: Option<u64>,
    pub pids_max: Option<u64>,
}

/// The largest number of streams the limits allow, and the limit that sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub streams: usize,
    pub limited_by: &'static str,
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} streams (limited by {})",
            self.streams, self.limited_by
        )
    }
}

impl Limits {
    /// Raises the open-file soft limit to the hard limit, then reads every limit.
    pub fn raise_and_read() -> Limits {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
        let open_files = rlimit::increase_nofile_limit(hard).unwrap_or(1024);
        Limits {
            open_files,
            open_files_hard: hard,
            max_map_count: read_number("/proc/sys/vm/max_map_count"),
            threads_max: read_number("/proc/sys/kernel/threads-max"),
            pids_max: read_number("/sys/fs/cgroup/pids.max")
                .or_else(|| read_number("/sys/fs/cgroup/pids/pids.max")),
        }
    }

    pub fn capacity(&self) -> Capacity {
        let mut candidates = vec![(
            self.open_files.saturating_sub(RESERVE_FDS) / FDS_PER_STREAM,
            "open files",
        )];
        if let Some(maps) = self.max_map_count {
            candidates.push((
                maps.saturating_sub(RESERVE_MAPPINGS) / MAPPINGS_PER_STREAM,
                "vm.max_map_count",
            ));
        }
        if let Some(threads) = self.threads_max {
            candidates.push((
                threads.saturating_sub(RESERVE_THREADS),
                "kernel.threads-max",
            ));
        }
        if let Some(pids) = self.pids_max {
            candidates.push((
                pids.saturating_sub(RESERVE_THREADS),
                "the cgroup's pids.max",
            ));
        }
        let (streams, limited_by) = candidates
            .into_iter()
            .min_by_key(|(streams, _)| *streams)
            .expect("open files is always a candidate");
        Capacity {
            streams: usize::try_from(streams).unwrap_or(usize::MAX),
            limited_by,
        }
    }
}

/// A number from a /proc or /sys file; `None` if missing or "max".
fn read_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            open_files: 1_048_576,
            open_files_hard: 1_048_576,
            max_map_count: Some(65_530),
            threads_max: Some(192_730),
            pids_max: None,
        }
    }

    #[test]
    fn default_kernel_limits_allow_ten_thousand_streams() {
        let capacity = limits().capacity();
        assert_eq!(capacity.limited_by, "vm.max_map_count");
        assert!(capacity.streams >= 10_000, "{capacity}");
    }

    #[test]
    fn the_smallest_limit_wins() {
        let capacity = Limits {
            open_files: 4096,
            ..limits()
        }
        .capacity();
        assert_eq!(
            capacity,
            Capacity {
                streams: 3072,
                limited_by: "open files"
            }
        );
        let capacity = Limits {
            pids_max: Some(1256),
            ..limits()
        }
        .capacity();
        assert_eq!(
            capacity,
            Capacity {
                streams: 1000,
                limited_by: "the cgroup's pids.max"
            }
        );
    }
}
