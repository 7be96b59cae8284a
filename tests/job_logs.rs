//! What the runner writes to the log, read back from a subscriber of this
//! binary's own: `lab serve` sweeps every fraction of a second, and a sweep
//! with nothing due must stay out of the info log.
//!
//! A binary of its own, with one test and a global subscriber: tracing caches
//! per call site whether anyone listens, and a thread-local subscriber can
//! miss events while other tests' threads hit the same call sites.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use idemlab::pipeline::reminders::schedule_sweep;
use idemlab::pipeline::Knobs;
use idemlab_test_support::lab;

/// Every line logged in this process at INFO and above.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The process's log, captured from the first call on.
    fn captured() -> &'static Lines {
        static LINES: OnceLock<Lines> = OnceLock::new();
        LINES.get_or_init(|| {
            let lines = Lines::default();
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other subscriber in this binary");
            lines
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_sweep_with_nothing_due_stays_out_of_the_info_log() {
    let lines = Lines::captured();
    let lab = lab(Knobs::safe()).await;
    let idle = schedule_sweep(lab.runner.client()).await.unwrap();
    assert_eq!(lab.drain().await, 1);
    lab.remind_now("pat@example.com").await;
    let busy = schedule_sweep(lab.runner.client()).await.unwrap();
    assert_eq!(lab.drain().await, 1);
    let log = lines.text();
    assert!(
        !log.contains(&idle),
        "the idle sweep logged at info:\n{log}"
    );
    let busy_lines: Vec<&str> = log.lines().filter(|l| l.contains(&busy)).collect();
    assert_eq!(
        busy_lines.len(),
        1,
        "one done line for the sweep that sent:\n{log}"
    );
    assert!(
        busy_lines[0].contains("INFO") && busy_lines[0].contains("done"),
        "{log}"
    );
    let (processed, _) = lab.runner.backend().stats().await.unwrap();
    assert_eq!(
        processed, 2,
        "both sweeps count as processed, as in Sidekiq"
    );
}
