//! How a failure inside a job becomes the job's error, and so whether the
//! runner retries it quietly (transient) or tells the error catcher.

use crate::clients::ServiceError;
use crate::runner::JobError;
use crate::store::StoreError;

/// A provider failure as the job's error: transient ones will be retried
/// quietly, the rest are notified.
pub(super) fn service_error(err: ServiceError) -> JobError {
    if err.is_transient() {
        JobError::transient(err.class_name(), err.to_string())
    } else {
        JobError::permanent(err.class_name(), err.to_string())
    }
}

/// A database failure: worth a retry (the database may be back).
pub(super) fn store_error(err: StoreError) -> JobError {
    JobError::transient("ActiveRecord::StatementInvalid", err.to_string())
}
