use super::*;
use std::sync::mpsc;

fn start(command: &str) -> (Programs, mpsc::Receiver<(String, String)>) {
    let (sender, lines) = mpsc::channel();
    let sender = std::sync::Mutex::new(sender);
    let sink: Sink = Arc::new(move |feed: &str, line: String| {
        let _ = sender.lock().unwrap().send((feed.to_owned(), line));
    });
    let programs = [("news".to_owned(), command.to_owned())];
    let running = Programs::start(&programs, 100, &sink, Log { quiet: true }).unwrap();
    (running, lines)
}

#[test]
fn each_line_is_sent_and_a_program_that_exits_starts_again_a_second_later() {
    let (programs, lines) = start("printf 'one\\n\\n  \\ntwo'");
    let wait = Duration::from_secs(10);
    let first = Instant::now();
    assert_eq!(
        lines.recv_timeout(wait).unwrap(),
        ("news".into(), "one".into())
    );
    assert_eq!(
        lines.recv_timeout(wait).unwrap().1,
        "two",
        "blank lines are skipped"
    );
    assert_eq!(lines.recv_timeout(wait).unwrap().1, "one", "started again");
    let again = first.elapsed();
    assert!(again >= FIRST && again < FIRST * 4, "{again:?}");
    programs.stop();
}

#[test]
fn the_stop_ends_a_program_that_runs_on() {
    let (programs, lines) = start("echo up; exec sleep 60");
    assert_eq!(lines.recv_timeout(Duration::from_secs(10)).unwrap().1, "up");
    let stopping = Instant::now();
    programs.stop();
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[test]
fn fast_failures_double_the_delay_up_to_a_minute() {
    let delays: Vec<u64> = (1..=9).map(|n| delay_after(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}
