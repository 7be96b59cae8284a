//! `lab check --target` over real processes, run as a user runs it: the
//! `lab` binary, a target file, scenario files, `--format json` read back,
//! the exit code and stderr. One binary of modules, by what they hold down:
//!
//! - [`templates`]: every template becomes what it names.
//! - [`placing`]: both `place_order` kinds and every `id` kind, seen in the
//!   timeline and in violations.
//! - [`readiness`]: a slow `ready` URL is waited for; a process that exits
//!   before it answers fails the run at once.
//! - [`service_faults`]: each fault mode, and search lag, against a target.
//! - [`worker_deaths`]: `worker = "die-after"` at each step, `calls = N`,
//!   and the restart after `restart_after_ms`.
//! - [`settling`]: with `[sidekiq]` and without, fast retries, and the
//!   message of a run that never settles.
//! - [`process_failures`]: a process that dies by itself during a run.
//! - [`refusals`]: target file errors, and the scenario keys a target
//!   refuses, each with its file and line.
//! - [`defaults`]: the scenarios folder run when none is named.
//! - [`parallel`]: `--jobs 2`, each run with its own ports and Redis.
//! - [`sidekiq_shop`]: a few scenarios of the Ruby example.
//! - [`queue_faults`]: `queue = "duplicate"` and `queue = "down"` through
//!   the lab's Redis proxy, on both example targets.
//! - [`explore`]: `lab explore --target` on the Ruby example: the naive
//!   double charge found and shrunk, the safe variant holding.
//!
//! The toy apps are `tests/data/targets/` (a shell script, `toy.sh`, that
//! calls the fakes with curl); the lab's own pipeline is
//! `examples/lab-pipeline/` (no Ruby). A test that needs `redis-server` or
//! Ruby's Sidekiq says so and skips, unless `CI` is set: then it fails.
//! A test marked `#[ignore = "bug: …"]` pins down a bug of the lab found
//! here: it fails until the bug is fixed (`cargo test --test target --
//! --ignored`), and then loses its mark.

mod harness;

mod defaults;
mod explore;
mod parallel;
mod placing;
mod process_failures;
mod queue_faults;
mod readiness;
mod refusals;
mod service_faults;
mod settling;
mod sidekiq_shop;
mod templates;
mod worker_deaths;
