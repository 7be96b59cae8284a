//! Planned worker deaths: "a gopher chews the power cable after line N".
//! A plan names step boundaries; the first time the pipeline reaches one, the
//! process running it dies there (each planned death happens once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::knobs::Step;
use crate::runner::JobError;

/// Which boundaries kill the process, and how many times each still will.
#[derive(Debug, Clone, Default)]
pub struct WorkerDeaths {
    planned: Arc<Mutex<HashMap<Step, u32>>>,
}

impl WorkerDeaths {
    /// No deaths.
    pub fn none() -> Self {
        Self::default()
    }

    /// The process dies the next `times` times it passes `step`.
    pub fn plan(&self, step: Step, times: u32) {
        *self
            .planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(step)
            .or_default() += times;
    }

    /// Called by the pipeline at each boundary: `Err` (the process dies)
    /// when a death is planned here.
    pub fn at(&self, step: Step) -> Result<(), JobError> {
        let mut planned = self.planned.lock().unwrap_or_else(|p| p.into_inner());
        match planned.get_mut(&step) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(JobError::worker_died(step.name()))
            }
            _ => Ok(()),
        }
    }

    /// Deaths planned but not yet happened.
    pub fn pending(&self) -> u32 {
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_death_happens_once() {
        let deaths = WorkerDeaths::none();
        deaths.plan(Step::Charge, 1);
        assert!(deaths.at(Step::Email).is_ok());
        let err = deaths.at(Step::Charge).unwrap_err();
        assert_eq!(err.kind, crate::runner::ErrorKind::WorkerDied);
        assert!(err.message.contains("after charge"));
        assert!(deaths.at(Step::Charge).is_ok());
        assert_eq!(deaths.pending(), 0);
    }
}
