//! When a failed job runs again, and when it stops trying: Sidekiq's rules.

use rand::Rng;

use super::job::RetryOption;

/// Sidekiq's default number of retries.
pub const DEFAULT_MAX_RETRIES: u32 = 25;

/// How failures are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries for a job whose `retry` is `true`.
    pub max_retries: u32,
    /// Multiplies every delay: 1.0 is Sidekiq's real schedule (the 25th retry
    /// comes about three weeks after the first failure); a lab run uses a tiny
    /// factor so the whole schedule takes milliseconds.
    pub time_scale: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            time_scale: 1.0,
        }
    }
}

/// What happens to a job that just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Into the retry set, to run again after `delay_ms`; `retry_count` is the
    /// value to store on the job.
    Retry { retry_count: u32, delay_ms: u64 },
    /// Retries exhausted: into the dead set, and the death handlers run.
    Dead,
    /// `retry: false`: dropped, as Sidekiq drops it (no dead set either).
    Discard,
}

impl RetryPolicy {
    /// Decides for a job with `retry` and the `retry_count` it carries (none
    /// before its first failure).
    pub fn after_failure(
        &self,
        retry: RetryOption,
        retry_count: Option<u32>,
        rng: &mut impl Rng,
    ) -> AfterFailure {
        let max = match retry {
            RetryOption::Enabled(false) => return AfterFailure::Discard,
            RetryOption::Enabled(true) => self.max_retries,
            RetryOption::Count(n) => n,
        };
        // Sidekiq: the first failure stores retry_count 0, each later one adds 1.
        let count = retry_count.map_or(0, |c| c + 1);
        if count >= max {
            return AfterFailure::Dead;
        }
        AfterFailure::Retry {
            retry_count: count,
            delay_ms: self.scaled_ms(delay_seconds(count, rng.random_range(0..10))),
        }
    }

    /// Seconds of Sidekiq's schedule in this policy's time.
    pub fn scaled_ms(&self, seconds: u64) -> u64 {
        (seconds as f64 * 1000.0 * self.time_scale).round().max(0.0) as u64
    }
}

/// Sidekiq's delay before retry number `count` (0-based):
/// `count^4 + 15 + rand(10) * (count + 1)` seconds.
pub fn delay_seconds(count: u32, rand10: u32) -> u64 {
    let count = u64::from(count);
    count.pow(4) + 15 + u64::from(rand10) * (count + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_formula_is_sidekiqs() {
        assert_eq!(delay_seconds(0, 0), 15);
        assert_eq!(delay_seconds(0, 9), 24);
        assert_eq!(delay_seconds(1, 3), 1 + 15 + 6);
        assert_eq!(delay_seconds(24, 0), 331_776 + 15);
    }

    #[test]
    fn retries_then_dies_after_max() {
        let policy = RetryPolicy {
            max_retries: 2,
            time_scale: 1.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let first = policy.after_failure(RetryOption::Enabled(true), None, &mut rng);
        let AfterFailure::Retry {
            retry_count,
            delay_ms,
        } = first
        else {
            panic!("{first:?}")
        };
        assert_eq!(retry_count, 0);
        assert!((15_000..=24_000).contains(&delay_ms), "{delay_ms}");
        assert!(matches!(
            policy.after_failure(RetryOption::Enabled(true), Some(0), &mut rng),
            AfterFailure::Retry { retry_count: 1, .. }
        ));
        assert_eq!(
            policy.after_failure(RetryOption::Enabled(true), Some(1), &mut rng),
            AfterFailure::Dead
        );
    }

    #[test]
    fn retry_options() {
        let policy = RetryPolicy::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            policy.after_failure(RetryOption::Enabled(false), None, &mut rng),
            AfterFailure::Discard
        );
        assert_eq!(
            policy.after_failure(RetryOption::Count(0), None, &mut rng),
            AfterFailure::Dead
        );
        assert!(matches!(
            policy.after_failure(RetryOption::Count(1), None, &mut rng),
            AfterFailure::Retry { .. }
        ));
    }

    #[test]
    fn the_time_scale_compresses_the_schedule() {
        let policy = RetryPolicy {
            max_retries: 25,
            time_scale: 0.001,
        };
        assert_eq!(policy.scaled_ms(15), 15);
        let total: u64 = (0..25).map(|c| policy.scaled_ms(delay_seconds(c, 9))).sum();
        assert!(
            total < 2_000_000,
            "the whole schedule in about half an hour of lab time: {total}"
        );
    }
}
