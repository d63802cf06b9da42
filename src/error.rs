//! The one place where node errors become gRPC statuses.

use passerelle_model::Violations;
use passerelle_node::NodeError;
use passerelle_store::{DiskProblem, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` detail naming each field.
pub fn invalid(v: &Violations) -> Status {
    let mut details = ErrorDetails::new();
    for x in v.iter() {
        details.add_bad_request_violation(x.field.clone(), x.description.clone());
    }
    let first = v.iter().next().map(|x| x.to_string()).unwrap_or_default();
    let message = if v.len() > 1 {
        format!("invalid request: {first} (and {} more)", v.len() - 1)
    } else {
        format!("invalid request: {first}")
    };
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// A single bad field of a request that is not a record (ids, filters, page tokens).
pub fn invalid_field(field: &str, why: impl Into<String>) -> Status {
    let mut v = Violations::new();
    v.push(field, why);
    invalid(&v)
}

pub fn from_node(e: NodeError) -> Status {
    match e {
        NodeError::Invalid(v) => invalid(&v),
        NodeError::RevisionMismatch {
            key,
            expected,
            actual,
        } => Status::aborted(format!(
            "revision mismatch on {key}: expected {expected}, stored {actual}"
        )),
        NodeError::NotFound(key) => Status::not_found(format!("{key} not found")),
        NodeError::Corrupt { key, source } => {
            tracing::error!(%key, error = %source, "stored record does not decode");
            Status::data_loss(format!("stored record {key} does not decode"))
        }
        NodeError::Setup(e) => Status::failed_precondition(e),
        // the store logs the failure once when it starts refusing writes: one log line
        // per refused call would flood the log while the disk stays full
        NodeError::Store(
            e @ StoreError::Unwritable {
                problem: DiskProblem::Full,
                ..
            },
        ) => Status::resource_exhausted(e.to_string()),
        NodeError::Store(e @ StoreError::Unwritable { .. }) => Status::unavailable(e.to_string()),
        NodeError::Store(e) => {
            tracing::error!(error = %e, "store error");
            Status::unavailable(format!("store unavailable: {e}"))
        }
    }
}

/// Violations carried by an INVALID_ARGUMENT status, for clients (the CLI).
pub fn violations_of(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|f| (f.field, f.description))
                .collect()
        })
        .unwrap_or_default()
}
