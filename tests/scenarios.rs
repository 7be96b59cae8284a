//! `cargo test`: every file in `scenarios/` as its own named test. A failing
//! scenario prints the checker's report: the order, the invariant, expected
//! against found, the ledger records and the job history.

use std::path::{Path, PathBuf};

use idemlab::scenario::{self, engine, result};
use libtest_mimic::{Arguments, Failed, Trial};

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn run(path: &Path) -> Result<(), Failed> {
    let scenario = scenario::load(path).map_err(|err| Failed::from(err.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let result = runtime.block_on(engine::run(&scenario, &engine::RunOptions::default()));
    if result.passed() {
        Ok(())
    } else {
        Err(Failed::from(result::render(&result)))
    }
}

fn main() {
    let args = Arguments::from_args();
    let trials = scenario_files()
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Trial::test(name, move || run(&path))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
