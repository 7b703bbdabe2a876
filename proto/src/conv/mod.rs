//! pb ⇄ domain conversions: the only place where generated types meet domain
//! types. pb → domain is `TryFrom` with a [`ConvError`] naming the field.

mod registry;
pub mod remote_log;

pub use registry::{id_kind_from_pb, uuid_from_bytes};

use crate::domain::InvalidField;

/// A protobuf message could not be turned into a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    #[error("missing field {field}")]
    MissingField { field: &'static str },
    #[error(transparent)]
    Invalid(#[from] InvalidField),
}

impl ConvError {
    /// See [`InvalidField::under`].
    pub fn under(self, parent: &str) -> ConvError {
        match self {
            ConvError::MissingField { field } => {
                ConvError::Invalid(InvalidField::new(field, "is required").under(parent))
            }
            ConvError::Invalid(i) => ConvError::Invalid(i.under(parent)),
        }
    }

    /// The request field the error is about.
    pub fn field(&self) -> &str {
        match self {
            ConvError::MissingField { field } => field,
            ConvError::Invalid(i) => &i.field,
        }
    }
}

/// `Option<T>` message field → `T`, or [`ConvError::MissingField`].
pub fn required<T>(v: Option<T>, field: &'static str) -> Result<T, ConvError> {
    v.ok_or(ConvError::MissingField { field })
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}
