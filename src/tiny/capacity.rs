//! How many connections and streams this host can carry, from its real limits.
//!
//! Each stream is one thread and, once tiny_http's pool thread has let go of it, one descriptor
//! (two for a stream other threads send to: see `outlet.rs`); every other connection holds one
//! of tiny_http's threads and two descriptors. Running out of
//! threads or memory mappings inside tiny_http is fatal (a failed thread spawn there panics and
//! the process aborts), while running out of descriptors is not (the accept fails, and the
//! server starts a new accept thread). So the open-file limit is set no higher than the number
//! of threads the host can map: connections then run out of descriptors first, whatever mix of
//! streams and idle connections arrives. Streams are refused with `503` before that.
//!
//! A feed's stream holds a second descriptor, the duplicate other threads send on. The numbers
//! from the soft limit up to the hard limit are kept for those ([`duplicate_high`]): everything
//! else still gets a number below the soft limit, which so still bounds tiny_http's threads,
//! while a feed's stream costs that limit one descriptor, as a counter's does, as long as numbers
//! above it are left.

use std::cmp;
use std::fmt;
use std::fs;
use std::os::fd::RawFd;
use std::sync::Mutex;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::lock;

/// Memory mappings one thread adds: its stack and guard page, and the alternate signal stack
/// and guard page that Rust gives every thread (measured on Linux: 4).
const MAPPINGS_PER_THREAD: u64 = 4;
/// Left for the binary's own mappings and the allocator's arenas.
const RESERVE_MAPPINGS: u64 = 2048;
/// Left for threads that are not connections: main, accept, signals, sweep, tiny_http's idle
/// pool threads.
const RESERVE_THREADS: u64 = 256;
/// Descriptors left for what is not a stream: page requests, idle connections (closed after
/// the idle timeout), connections of a burst not yet released. A quarter of the limit, at most
/// 1024.
const RESERVE_FDS_MAX: u64 = 1024;
/// The largest refused body that may be discarded: tiny_http allocates (without touching) a
/// buffer of the declared size to discard it.
const DRAINABLE_BODY_MAX: u64 = 1 << 30;

/// The host's limits as read at start.
pub struct HostLimits {
    /// The open-file soft limit the process runs with, which every descriptor but the feed
    /// streams' duplicates stays below.
    pub open_files: u64,
    pub open_files_hard: u64,
    /// The kernel's ceiling for any open-file limit (`fs.nr_open`).
    pub nr_open: Option<u64>,
    pub max_map_count: Option<u64>,
    pub threads_max: Option<u64>,
    pub pids_max: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// The largest number of streams the limits allow, the limit that sets it, and the descriptors
/// streams may hold between them (a feed's stream holds two, one of them numbered above the
/// open-file limit while such numbers are left).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub streams: usize,
    pub limited_by: &'static str,
    pub descriptors: usize,
    /// Descriptor numbers above the open-file limit, one for each feed stream's duplicate.
    pub above_limit: usize,
}

impl Capacity {
    /// The most streams there can be if every one is a feed's: one descriptor each of the
    /// budget while numbers above the limit are left, two after that.
    pub fn feed_streams(&self) -> usize {
        let covered = self.above_limit.min(self.descriptors);
        self.streams.min(covered + (self.descriptors - covered) / 2)
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stream(s) (limited by {}); {} if every one is a feed's, which holds two descriptors",
            self.streams,
            self.limited_by,
            self.feed_streams()
        )
    }
}

impl HostLimits {
    /// Reads the host's limits and sets the open-file soft limit to the hard limit or to the
    /// thread budget, whichever is lower; and has the process's futexes hashed for thousands of
    /// threads (see `threads.rs`).
    pub fn raise_and_read() -> HostLimits {
        super::threads::use_the_global_futex_hash();
        // `None` is no limit.
        let unlimited = |limit: Option<u64>| limit.unwrap_or(u64::MAX);
        let maximum = getrlimit(Resource::Nofile).maximum;
        let hard = unlimited(maximum);
        let mut limits = HostLimits {
            open_files: 0,
            open_files_hard: hard,
            nr_open: read_number("/proc/sys/fs/nr_open", ""),
            max_map_count: read_number("/proc/sys/vm/max_map_count", ""),
            threads_max: read_number("/proc/sys/kernel/threads-max", ""),
            pids_max: own_pids_max(),
            memory_bytes: read_number("/proc/meminfo", "MemTotal:").map(|kib: u64| kib * 1024),
        };
        let wanted = hard.min(limits.thread_budget().0);
        // Taken first: a duplicate made meanwhile would set the limit back to a stale one.
        let mut high = lock(&HIGH);
        let set = Rlimit {
            current: Some(wanted),
            maximum,
        };
        limits.open_files = match setrlimit(Resource::Nofile, set) {
            Ok(()) => wanted,
            Err(_) => unlimited(getrlimit(Resource::Nofile).current),
        };
        // Descriptors the process already has at or above the limit (an embedding program's)
        // take numbers the duplicates cannot have.
        let fds = open_descriptors().into_iter().flatten();
        let taken = fds.filter(|&fd| fd as u64 >= limits.open_files).count() as u64;
        high.base = limits.open_files;
        high.ceiling = limits.ceiling().saturating_sub(taken).max(high.base);
        limits
    }

    /// How many threads the process may have for connections, and the limit that sets it.
    fn thread_budget(&self) -> (u64, &'static str) {
        let reserved = |limit: Option<u64>, reserve| limit.map(|n: u64| n.saturating_sub(reserve));
        let maps = reserved(self.max_map_count, RESERVE_MAPPINGS).map(|n| n / MAPPINGS_PER_THREAD);
        let threads = reserved(self.threads_max, RESERVE_THREADS);
        let pids = reserved(self.pids_max, RESERVE_THREADS);
        [
            (maps, "vm.max_map_count"),
            (threads, "kernel.threads-max"),
            (pids, "the cgroup's pids.max"),
        ]
        .into_iter()
        .filter_map(|(budget, limit)| Some((budget?, limit)))
        .min_by_key(|(budget, _)| *budget)
        .unwrap_or((u64::MAX, "nothing"))
    }

    pub fn capacity(&self) -> Capacity {
        let (threads, thread_limit) = self.thread_budget();
        let threads = (usize::try_from(threads).unwrap_or(usize::MAX), thread_limit);
        let descriptors = self.stream_descriptors();
        // The first on a tie: the open files.
        let (streams, limited_by) = cmp::min_by_key((descriptors, "open files"), threads, |n| n.0);
        Capacity {
            streams,
            limited_by,
            descriptors,
            above_limit: self.above_limit(),
        }
    }

    /// The descriptor numbers above the open-file limit, for the feed streams' duplicates.
    pub fn above_limit(&self) -> usize {
        usize::try_from(self.ceiling().saturating_sub(self.open_files)).unwrap_or(usize::MAX)
    }

    /// The highest open-file limit the process can set: the hard limit, or the kernel's. With
    /// neither known, the limit as it is.
    fn ceiling(&self) -> u64 {
        match (self.open_files_hard, self.nr_open) {
            (hard, Some(nr_open)) => hard.min(nr_open),
            (u64::MAX, None) => self.open_files,
            (hard, None) => hard,
        }
    }

    /// The descriptors streams may hold between them: the open-file limit but for the reserve.
    pub fn stream_descriptors(&self) -> usize {
        let reserve_fds = (self.open_files / 4).min(RESERVE_FDS_MAX);
        usize::try_from(self.open_files.saturating_sub(reserve_fds)).unwrap_or(usize::MAX)
    }

    /// The largest declared body that can be refused without keeping its connection: an
    /// untouched allocation of that size must succeed, so a quarter of memory, at most 1 GiB.
    pub fn drainable_body(&self) -> usize {
        let bytes = self
            .memory_bytes
            .map_or(64 << 20, |memory| (memory / 4).min(DRAINABLE_BODY_MAX));
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }
}

/// The number that starts the first line of a /proc or /sys file to start with `name` (the
/// `24576 kB` of `MemTotal:`; "" for a file of one number); `None` if missing or "max".
pub fn read_number<T: std::str::FromStr>(path: &str, name: &str) -> Option<T> {
    let text = fs::read_to_string(path).ok()?;
    let value = text.lines().find_map(|line| line.strip_prefix(name))?;
    value.split_whitespace().next()?.parse().ok()
}

/// The lowest `pids.max` over the process's own cgroup and its ancestors: under systemd a unit's
/// `TasksMax=` is its own cgroup's, not the root's, and every ancestor's limit applies too.
/// "max" (no limit) reads as none.
fn own_pids_max() -> Option<u64> {
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let (root, path) = pids_cgroup(&cgroups)?;
    cgroup_ancestors(path)
        .filter_map(|dir| read_number(&format!("{root}{dir}/pids.max"), ""))
        .min()
}

/// Where the pids controller of this process's cgroup is, from `/proc/self/cgroup`: cgroup v1's
/// `N:pids:/path` under `/sys/fs/cgroup/pids`, else v2's `0::/path` under `/sys/fs/cgroup`.
fn pids_cgroup(cgroups: &str) -> Option<(&'static str, &str)> {
    let entry = |controllers: &str| {
        cgroups.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
            names
                .split(',')
                .any(|name| name == controllers)
                .then_some(path)
        })
    };
    let v1 = entry("pids").map(|path| ("/sys/fs/cgroup/pids", path));
    v1.or_else(|| entry("").map(|path| ("/sys/fs/cgroup", path)))
}

/// `/a/b` gives `/a/b`, `/a`, and `` (the root).
fn cgroup_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let path = path.trim_end_matches('/');
    std::iter::successors(Some(path), |dir| dir.rfind('/').map(|slash| &dir[..slash]))
}

/// The descriptor numbers kept for the feed streams' duplicates: from `base` (the soft limit,
/// which everything else stays below) to `ceiling` (the hard limit, or the kernel's), and how
/// many of them are taken or promised ([`HighSlot`]).
struct HighNumbers {
    base: u64,
    ceiling: u64,
    promised: u64,
}

static HIGH: Mutex<HighNumbers> = Mutex::new(HighNumbers {
    base: 0,
    ceiling: 0,
    promised: 0,
});

/// The numbers of the descriptors this process has open, from /proc/self/fd.
pub fn open_descriptors() -> Option<impl Iterator<Item = RawFd>> {
    let entries = fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()))
}

/// A number above the soft limit, promised to one feed stream's duplicate until this is dropped
/// (with the duplicate, once it has one: see `Outlet::share`).
pub struct HighSlot(());

impl HighSlot {
    /// One of the numbers above the soft limit, if one is left.
    pub fn promise() -> Option<HighSlot> {
        let mut high = lock(&HIGH);
        if high.base + high.promised >= high.ceiling {
            return None;
        }
        high.promised += 1;
        Some(HighSlot(()))
    }
}

impl Drop for HighSlot {
    fn drop(&mut self) {
        lock(&HIGH).promised -= 1;
    }
}

/// A duplicate of `socket` numbered at or above the soft limit (close-on-exec), for a stream that
/// holds a [`HighSlot`]. The limit is raised for the call and set back at once: while it is
/// raised, something else opened at the same moment could get a high number too, but only if
/// every number below the limit is taken (it would have failed otherwise).
pub fn duplicate_high(socket: &socket2::Socket) -> std::io::Result<socket2::Socket> {
    let high = lock(&HIGH);
    let before = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: Some(high.ceiling),
        ..before
    };
    setrlimit(Resource::Nofile, raised)?;
    let base = i32::try_from(high.base).unwrap_or(i32::MAX);
    let duplicate = rustix::io::fcntl_dupfd_cloexec(socket, base);
    setrlimit(Resource::Nofile, before)?;
    Ok(socket2::Socket::from(duplicate?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's defaults: 2 cores, 24 GiB, vm.max_map_count 65530, 20000 open files.
    fn limits() -> HostLimits {
        HostLimits {
            open_files: 15_870,
            open_files_hard: 20_000,
            nr_open: Some(1_048_576),
            max_map_count: Some(65_530),
            threads_max: Some(192_730),
            pids_max: None,
            memory_bytes: Some(24 << 30),
        }
    }

    #[test]
    fn default_kernel_limits_allow_more_than_ten_thousand_streams() {
        let limits = limits();
        assert_eq!(limits.thread_budget(), (15_870, "vm.max_map_count"));
        let capacity = limits.capacity();
        assert_eq!(
            capacity,
            Capacity {
                streams: 14_846,
                limited_by: "open files",
                descriptors: 14_846,
                above_limit: 4_130,
            }
        );
        // 4,130 with one descriptor of the budget, then 5,358 with two.
        assert_eq!(capacity.feed_streams(), 9_488);
        let systemd = HostLimits {
            open_files_hard: 524_288,
            ..limits
        };
        assert_eq!(systemd.capacity().feed_streams(), 14_846);
    }

    #[test]
    fn the_smallest_limit_wins() {
        let capacity = HostLimits {
            open_files: 4096,
            ..limits()
        }
        .capacity();
        assert_eq!(
            capacity,
            Capacity {
                streams: 3072,
                limited_by: "open files",
                descriptors: 3072,
                above_limit: 15_904,
            }
        );
        let capacity = HostLimits {
            pids_max: Some(1256),
            ..limits()
        }
        .capacity();
        assert_eq!(
            capacity,
            Capacity {
                streams: 1000,
                limited_by: "the cgroup's pids.max",
                descriptors: 14_846,
                above_limit: 4_130,
            }
        );
    }

    #[test]
    fn a_low_open_file_limit_keeps_a_quarter_in_reserve() {
        let capacity = HostLimits {
            open_files: 256,
            open_files_hard: 256,
            ..limits()
        }
        .capacity();
        assert_eq!(capacity.streams, 192);
        assert_eq!(capacity.feed_streams(), 96);
    }

    #[test]
    fn the_pids_cgroup_is_the_processs_own() {
        let v2 = "0::/system.slice/sse-htmx.service\n";
        assert_eq!(
            pids_cgroup(v2),
            Some(("/sys/fs/cgroup", "/system.slice/sse-htmx.service"))
        );
        let v1 = "9:name=systemd:/x\n8:pids:/system.slice/a.service\n0::/\n";
        assert_eq!(
            pids_cgroup(v1),
            Some(("/sys/fs/cgroup/pids", "/system.slice/a.service"))
        );
        assert_eq!(pids_cgroup("4:memory:/m\n"), None);
        let dirs: Vec<_> = cgroup_ancestors("/system.slice/a.service").collect();
        assert_eq!(dirs, ["/system.slice/a.service", "/system.slice", ""]);
        assert_eq!(cgroup_ancestors("/").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn drainable_body_is_a_quarter_of_memory_at_most_a_gibibyte() {
        assert_eq!(limits().drainable_body(), 1 << 30);
        let small = HostLimits {
            memory_bytes: Some(512 << 20),
            ..limits()
        };
        assert_eq!(small.drainable_body(), 128 << 20);
    }
}
