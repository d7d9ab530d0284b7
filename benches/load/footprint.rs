//! What the server costs, read from /proc: its memory, threads, mappings and descriptors at one
//! moment, and the names the table and the JSON give each figure.

use std::fs;

use crate::process::{field_number, proc_mappings, proc_open_fds, proc_status};

/// The server's footprint at one moment.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub threads: u64,
    pub mappings: u64,
    pub fds: u64,
    /// System-wide `KernelStack:` of /proc/meminfo: a thread's kernel stack is not in its
    /// process's RSS.
    pub kernel_stack_kib: u64,
}

/// `None` once the process is gone (a zombie has no `VmRSS:`).
pub fn sample_process(pid: u32) -> Option<ProcSample> {
    let status = proc_status(pid)?;
    let mappings = proc_mappings(pid)?;
    let fds = proc_open_fds(pid)?;
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    Some(ProcSample {
        rss_kib: field_number(&status, "VmRSS:")?,
        threads: field_number(&status, "Threads:")?,
        mappings,
        fds,
        kernel_stack_kib: field_number(&meminfo, "KernelStack:")?,
    })
}

/// One figure of a [`ProcSample`], as the table and the JSON name it.
pub struct Figure {
    pub json: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub read: fn(&ProcSample) -> u64,
}

pub const FIGURES: [Figure; 5] = [
    Figure {
        json: "rss_kib",
        label: "RSS",
        unit: "KiB",
        read: |s| s.rss_kib,
    },
    Figure {
        json: "threads",
        label: "threads",
        unit: "",
        read: |s| s.threads,
    },
    Figure {
        json: "mappings",
        label: "mappings",
        unit: "",
        read: |s| s.mappings,
    },
    Figure {
        json: "fds",
        label: "open fds",
        unit: "",
        read: |s| s.fds,
    },
    Figure {
        json: "kernel_stack_kib",
        label: "KernelStack (system-wide)",
        unit: "KiB",
        read: |s| s.kernel_stack_kib,
    },
];
