//! The progress bar `lab check` and `lab explore` draw on standard error
//! while they work: one look, and hidden when standard error is not a
//! terminal (a CI log gets the summary only).

use std::io::IsTerminal;

/// A bar of `len` steps on a terminal, hidden otherwise.
pub fn bar(len: u64) -> indicatif::ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
