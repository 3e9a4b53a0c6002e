//! End to end in a real pseudo-terminal: the binary as a person runs it.
//! Start a transfer with the deposit bug, see the attempts rise, hot-swap
//! the fix, see it complete and the money move; then SIGKILL holdfast
//! mid-retry, start it again, and see the run still there and finishing.
//! The clock runs at 60× so the backoff passes quickly; the test waits for
//! what the screen shows (with a limit), never for a fixed time.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

const ROWS: u16 = 32;
const COLS: u16 = 110;
/// How long the screen may take to show something (real time; the
/// binary is a debug build on a 2-core machine).
const LIMIT: Duration = Duration::from_secs(60);

impl Screen {
    fn launch(data_dir: &std::path::Path) -> Screen {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_holdfast"));
        cmd.arg("--data-dir");
        cmd.arg(data_dir);
        cmd.arg("--speed");
        cmd.arg("60");
        cmd.env("TERM", "xterm-256color");
        cmd.env("NO_COLOR", "1");
        let child = pty.slave.spawn_command(cmd).expect("spawn holdfast");
        drop(pty.slave);
        let size = |n: u16| std::num::NonZeroU16::new(n).expect("a size");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(size(ROWS), size(COLS), 0)));
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let p = parser.clone();
        // Drained on its own thread, or the app blocks writing its frames.
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                p.lock().unwrap().process(&buf[..n]);
            }
        });
        let writer = pty.master.take_writer().expect("writer");
        // The master must outlive the child's use of the pty.
        std::mem::forget(pty.master);
        Screen {
            parser,
            writer,
            child,
        }
    }

    fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, what: &str) -> String {
        self.wait_until(what, |t| t.contains(what))
    }

    fn wait_until(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let t = self.text();
            if f(&t) {
                return t;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the screen never showed {what:?}; it shows:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn press(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }
}

/// The attempt number the pending card shows ("attempt N of ∞"), if any.
fn attempt(text: &str) -> Option<u32> {
    text.match_indices("attempt ").find_map(|(i, _)| {
        let rest = &text[i + 8..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest[digits.len()..]
            .starts_with(" of ∞")
            .then(|| digits.parse().ok())
            .flatten()
    })
}

#[test]
fn the_first_story_in_a_real_terminal_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = Screen::launch(&data);
    // The picker first: free play.
    s.wait_for("Free play");
    s.press("\r");
    s.wait_for("worker running");
    s.press("b");
    s.wait_for("deposit: buggy");
    s.press("t");
    s.wait_for("start a money transfer");
    s.press("\r");
    s.wait_until("attempt 3 or later", |t| attempt(t).is_some_and(|a| a >= 3));
    s.press("h");
    let t = s.wait_for("✓ Completed");
    assert!(t.contains("deposit: fixed"), "{t}");
    s.wait_for("43-812: $250");

    // Again with the bug, then a crash of the whole process mid-retry.
    s.press("b");
    s.wait_for("deposit: buggy");
    s.press("t");
    s.wait_for("start a money transfer");
    s.press("\r");
    s.wait_until("a second run retrying", |t| {
        t.contains("● Running ↻") && attempt(t).is_some_and(|a| a >= 2)
    });
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    let mut s = Screen::launch(&data);
    s.wait_for("Free play");
    s.press("\r");
    let t = s.wait_for("● Running");
    assert!(t.contains("workflows (2)"), "{t}");
    assert!(
        t.contains("deposit: buggy"),
        "the bug is still switched on:\n{t}"
    );
    s.wait_until("the retries carry on", |t| {
        attempt(t).is_some_and(|a| a >= 3)
    });
    s.press("h");
    s.wait_until("both runs completed", |t| {
        t.matches("✓ Completed").count() == 2
    });
    s.press("q");
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
