//! What the server hands over when it replaces its image in place (`process::replace_image`):
//! the same PID (systemd and pid files see no change), the listening socket kept open across it
//! (a connection that arrives meanwhile waits in its queue: none is refused), and the
//! application's state in a memory file.
//!
//! The new image starts with its standard streams, the listener and the state file only:
//! whatever tiny_http held goes with the old image's threads. The two handed over are named in
//! the environment of the new image, which takes them before anything else:
//!
//! ```text
//! SSE_HTMX_HANDOFF=listener=3;state=4;heals=2@1764670000123;note=before=17
//! ```
//!
//! `heals` is the series of re-execs for healing (`heal.rs`), `note` the application's own.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::heal::Series;
use crate::process::{self, HANDOFF_VAR as VAR};

/// Why the server replaces its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `SIGHUP`: run the program file again, which may be a new version.
    Upgrade,
    /// Too many connections are held for good (see `heal.rs`): run this same image again.
    Heal { series: Series },
}

/// What the image before this one handed over.
pub struct Inherited {
    /// Still listening, with the connections that arrived during the exec in its queue.
    pub listener: OwnedFd,
    /// The application's state, as it wrote it.
    pub state: Vec<u8>,
    pub series: Option<Series>,
    pub note: String,
}

impl Inherited {
    /// What the image before this one handed over, if it did. To be called once, at start,
    /// before any other descriptor is opened: the numbers named are this process's from then on.
    pub fn take() -> Option<Result<Inherited, String>> {
        let text = std::env::var(VAR).ok()?;
        Some(parse(&text).map_err(|error| format!("{VAR}={text:?}: {error}")))
    }
}

fn parse(text: &str) -> Result<Inherited, Box<dyn std::error::Error>> {
    let mut listener = None;
    let mut state = None;
    let mut series = None;
    let mut note = String::new();
    for field in text.split(';') {
        let (name, value) = field.split_once('=').ok_or("a field has no '='")?;
        match name {
            "listener" => listener = Some(value.parse::<RawFd>()?),
            "state" => state = Some(value.parse::<RawFd>()?),
            "heals" => series = Some(parse_series(value).ok_or("bad heals")?),
            // The note is last and may hold any character.
            "note" => {
                note = text.split_once("note=").map_or("", |(_, rest)| rest).into();
                break;
            }
            _ => return Err(format!("unknown field {name:?}").into()),
        }
    }
    let listener = process::take_inherited(listener.ok_or("no listener")?)?;
    let state = match state {
        Some(fd) => read_state(File::from(process::take_inherited(fd)?))?,
        None => Vec::new(),
    };
    Ok(Inherited {
        listener,
        state,
        series,
        note,
    })
}

fn parse_series(text: &str) -> Option<Series> {
    let (count, millis) = text.split_once('@')?;
    Some(Series {
        count: count.parse().ok()?,
        last: UNIX_EPOCH + Duration::from_millis(millis.parse().ok()?),
    })
}

/// The state, as long as the image before wrote it: every feed's history, which no fixed bound
/// holds (`--max-feeds` of up to 1 MiB of text each, 64 MiB by default, and a record's own bytes
/// besides); a cut one would lose the feeds after it. Up to the file's size, so that a
/// descriptor that is not such a file (a device) yields nothing rather than no end.
fn read_state(mut file: File) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let (len, mut state) = (file.metadata()?.len(), Vec::new());
    file.take(len).read_to_end(&mut state)?;
    Ok(state)
}

/// An anonymous file in memory for the state, made at start so that a re-exec needs no new
/// descriptor (it may come when a flood has taken them all). `None` if none could be made: the
/// exec tries once more, and fails with why if it cannot either (as it always does on a kernel
/// before 3.17, which has no `memfd_create`: such a host neither heals nor upgrades in place).
pub fn state_file() -> Option<File> {
    process::memory_file(c"sse-htmx-state")
}

/// Replaces the process image with `program`, run with `args` (its name first), handing it the
/// listener, `state` in the state file (made now if none could be made at start), `series` and
/// `note`.
/// Returns only if that failed, with why; the listener then serves on.
pub fn exec(
    program: &Path,
    args: &[OsString],
    listener: &TcpListener,
    state_file: Option<&File>,
    state: &[u8],
    series: Option<Series>,
    note: &str,
) -> io::Error {
    let made = state_file.is_none().then(self::state_file).flatten();
    let Some(file) = state_file.or(made.as_ref()) else {
        return io::Error::other("cannot make a memory file for the state");
    };
    // Written at offset 0 without moving the file's position, which the new image shares.
    if let Err(error) = file.set_len(0).and_then(|()| file.write_all_at(state, 0)) {
        return error;
    }
    let handoff = text(listener.as_raw_fd(), file.as_raw_fd(), series, note);
    process::replace_image(program, args, &handoff, &[listener.as_fd(), file.as_fd()])
}

/// The handoff variable's value, as [`parse`] reads it.
fn text(listener: RawFd, state: RawFd, series: Option<Series>, note: &str) -> String {
    let heals = series.map_or(String::new(), |series| {
        let since = series.last.duration_since(UNIX_EPOCH).unwrap_or_default();
        let millis = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        format!(";heals={}@{millis}", series.count)
    });
    format!("listener={listener};state={state}{heals};note={note}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handoff_variable_is_read_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = OwnedFd::from(listener.try_clone().unwrap());
        let number = fd.as_raw_fd();
        std::mem::forget(fd);
        let text = format!("listener={number};heals=3@1764670000123;note=before=1;x");
        let inherited = parse(&text).unwrap();
        assert_eq!(inherited.listener.as_raw_fd(), number);
        assert_eq!(inherited.note, "before=1;x");
        assert!(inherited.state.is_empty());
        let series = inherited.series.unwrap();
        assert_eq!(series.count, 3);
        assert_eq!(
            series.last,
            UNIX_EPOCH + Duration::from_millis(1_764_670_000_123)
        );
        let written = super::text(number, 9, Some(series), "before=1;x");
        let with_state = text.replace(";heals", ";state=9;heals");
        assert_eq!(written, with_state, "written as it is read");
    }

    #[test]
    fn a_bad_handoff_variable_is_an_error_not_a_descriptor_taken() {
        assert!(parse("listener=1").is_err(), "a standard stream");
        assert!(parse("state=9").is_err(), "no listener");
        assert!(parse("listener=x").is_err());
        assert!(parse("door=3").is_err());
    }

    #[test]
    fn the_state_file_is_read_from_its_start() {
        let file = state_file().expect("memfd_create");
        file.write_all_at(b"held messages", 0).unwrap();
        assert_eq!(read_state(file).unwrap(), b"held messages");
    }
}
