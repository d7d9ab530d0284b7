//! Pipes in the states a server's output may meet: one kept full by a writer of ours, and one read
//! to its end on a thread of its own.

#![allow(dead_code)] // only the test binaries about output use it

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use super::{TIMEOUT, wait_for};

/// What the filler writes. A test takes it out of what it read; the words it looks for have none.
pub const FILLER: u8 = b'.';

/// A pipe that a thread of ours has filled and keeps full: its remaining writes of [`FILLER`]
/// go through only as the pipe is read.
pub struct FullPipe {
    pub reader: PipeReader,
    pub writer: PipeWriter,
    pub filler: thread::JoinHandle<()>,
}

impl FullPipe {
    pub fn new() -> FullPipe {
        const FILLER_BYTES: usize = 1 << 20; // more than any pipe holds (pipe-max-size is 1 MiB)
        let (reader, writer) = std::io::pipe().unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let filler = {
            let (mut writer, written) = (writer.try_clone().unwrap(), written.clone());
            thread::spawn(move || {
                let block = [FILLER; 4096];
                while written.load(Ordering::SeqCst) < FILLER_BYTES
                    && writer.write_all(&block).is_ok()
                {
                    written.fetch_add(block.len(), Ordering::SeqCst);
                }
            })
        };
        // Full once the filler has written something and makes no more progress.
        let mut last = 0;
        let full = wait_for(TIMEOUT, || {
            thread::sleep(Duration::from_millis(20));
            let now = written.load(Ordering::SeqCst);
            let stalled = now > 0 && now == last;
            last = now;
            stalled
        });
        assert!(full, "the pipe never filled ({last} bytes written)");
        FullPipe {
            reader,
            writer,
            filler,
        }
    }
}

/// A pipe's read end, read to its end on a thread of its own.
pub struct Drain(mpsc::Receiver<Vec<u8>>);

pub fn read_to_end(mut reader: PipeReader) -> Drain {
    let (done, bytes) = mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = reader.read_to_end(&mut all);
        let _ = done.send(all);
    });
    Drain(bytes)
}

impl Drain {
    /// Everything written, once every write end is closed.
    pub fn finish(self) -> String {
        let bytes = self.0.recv_timeout(TIMEOUT).expect("the pipe's end");
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
