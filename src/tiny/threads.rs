//! How the kernel treats this process's threads (`prctl`): thousands of them, each asleep but
//! for one write a second.

use std::num::NonZeroU64;
use std::time::Duration;

/// Puts the process's futexes in the kernel's global hash table rather than one of its own.
///
/// Linux 6.16 and later give a process a private futex hash table, sized for few threads. With
/// thousands of stream threads waiting, every wake-up (a channel, a lock, tiny_http's queues)
/// walks long chains of them: with 10,000 streams open, a `POST` cost 2.4 times the CPU it costs
/// with the global table (measured with `prctl(PR_FUTEX_HASH)` set both ways, same build). A
/// kernel without the option refuses it, and nothing changes.
#[allow(unsafe_code)]
pub fn use_the_global_futex_hash() {
    const PR_FUTEX_HASH: libc::c_int = 78;
    const PR_FUTEX_HASH_SET_SLOTS: libc::c_ulong = 1;
    // Zero slots means the global table. A kernel that does not know the option changes nothing.
    let (slots, flags, unused) = (0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong);
    // SAFETY: this option takes plain integers (all four given, as the kernel reads them) and
    // reads or writes no memory of ours.
    unsafe { libc::prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, slots, flags, unused) };
}

/// Lets the calling thread's timed waits end up to `slack` after their deadline (the kernel's
/// default is 50 µs; zero sets it back to that), so that the kernel can end many threads' waits
/// on one timer interrupt instead of one each. Thousands of streams that each wake once a second
/// then cost less CPU per event: with 1 ms, 7–47 % less at 5,000 streams and 13–33 % less at
/// 10,000, measured on a virtual machine, where a timer interrupt is dear (docs/performance.md).
pub fn set_timer_slack(slack: Duration) {
    let nanoseconds = u64::try_from(slack.as_nanos()).unwrap_or(u64::MAX);
    // A kernel without the option changes nothing.
    let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(nanoseconds));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_s_timer_slack_is_set_and_set_back() {
        // A new thread's default is its parent's slack when it was made: what it starts with.
        std::thread::spawn(|| {
            let slack = || rustix::thread::current_timer_slack().unwrap();
            let default = slack();
            set_timer_slack(Duration::from_millis(1));
            assert_eq!(slack(), 1_000_000);
            set_timer_slack(Duration::ZERO);
            assert_eq!(slack(), default);
        })
        .join()
        .unwrap();
    }
}
