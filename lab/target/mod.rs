//! Targets: the user's own app under the lab's scenarios.
//!
//! A target file (`examples/NAME/TARGET.toml`) describes an app that talks to
//! the fake services: the processes to start, how to place an order, how to
//! tell the app's order id, when it has settled, and, for a Sidekiq app,
//! where its Redis is. `lab check --target FILE SCENARIOS…` runs each
//! scenario against a fresh copy of it: fresh fake services and a private
//! Redis, the app's processes started, the faults applied, the orders
//! placed, worker processes killed when the fakes have performed an effect,
//! the run settled, the ledgers checked by the same checker as the lab's own
//! pipeline, and every process stopped.
//!
//! - [`file`]: the target file format, parsed strictly (errors name the
//!   file, line and column); [`template`]: the `{fakes}`, `{redis}`,
//!   `{port}`, `{port.NAME}`, `{dir}`, `{n}` and `{quantity}` templates in
//!   it.
//! - [`scenario_rules`]: which scenario keys and faults a target takes.
//! - [`processes`]: the app's processes, each in its own process group with
//!   its log file: started, waited for, killed, stopped.
//! - [`redis_server`]: a private `redis-server` on a free port;
//!   [`redis_proxy`]: a proxy in front of it that injects the queue faults
//!   (`duplicate`, `down`) into the app's own Redis traffic.
//! - [`place`]: placing an order (a command or an HTTP request) and reading
//!   its id.
//! - [`kills`]: worker deaths, timed by the fake services: after the effect,
//!   before its answer.
//! - [`sidekiq`]: a Sidekiq app's Redis: what is left to run, the dead set,
//!   "Retry now".
//! - [`watch`]: the run's watcher on the fake services: kills due, faults
//!   fired.
//! - [`settle`]: when a run has settled, and why not.
//! - [`run`]: one scenario against a target, start to finish; [`story`]:
//!   what the fakes and Sidekiq saw, on the run's timeline.

pub mod file;
pub mod kills;
pub mod place;
pub mod processes;
pub mod redis_proxy;
pub mod redis_server;
pub mod run;
pub mod scenario_rules;
pub mod settle;
pub mod sidekiq;
pub mod story;
pub mod template;
pub mod watch;

/// The scenarios of a target file when none are named:
/// `scenarios/<file's name>/` beside it (`examples/shop/naive.toml` has
/// `examples/shop/scenarios/naive/`).
pub fn default_scenarios(target: &file::Target) -> std::path::PathBuf {
    let stem = target
        .path
        .file_stem()
        .map_or_else(|| "scenarios".into(), |s| s.to_os_string());
    target.dir.join("scenarios").join(stem)
}
