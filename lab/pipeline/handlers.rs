//! What the runner tells the error catcher: every error that was not
//! silenced, and every job whose retries ran out.

use async_trait::async_trait;

use crate::clients::ProviderClients;
use crate::runner::{DeathHandler, ErrorHandler, Job, JobError};

/// Sends errors and deaths to the error-catcher service, as the book app's
/// Bugsnag-like handler does.
pub struct NotifyErrorCatcher(pub ProviderClients);

#[async_trait]
impl ErrorHandler for NotifyErrorCatcher {
    async fn on_error(&self, job: &Job, error: &JobError) {
        if let Err(err) = self
            .0
            .error_catcher
            .notify(&error.class, &error.message)
            .await
        {
            tracing::warn!(jid = %job.jid, %err, "could not notify the error catcher");
        }
    }
}

#[async_trait]
impl DeathHandler for NotifyErrorCatcher {
    async fn on_death(&self, job: &Job, error: &JobError) {
        let message = death_message(job, error);
        if let Err(err) = self.0.error_catcher.notify(&error.class, &message).await {
            tracing::warn!(jid = %job.jid, %err, "could not notify the error catcher of a death");
        }
    }
}

/// `<JobClass> won't be retried: <message>`.
pub fn death_message(job: &Job, error: &JobError) -> String {
    format!("{} won't be retried: {}", job.class, error.message)
}
