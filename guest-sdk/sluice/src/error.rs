//! The error a task returns: a user error with a message and a retryable flag.

use std::fmt;

/// A user error: the task ran and reports that it could not do its job. The host records the
/// message; `retryable` tells it whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    pub retryable: bool,
}

/// `Result` with [`Error`] as its error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error that another attempt would not fix.
    pub fn user(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            retryable: false,
        }
    }

    /// An error that another attempt might not hit (a flaky dependency, say).
    pub fn retryable(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            retryable: true,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// `Error` deliberately does not implement `std::error::Error`, so that every standard error can
// convert into it with `?` (the same arrangement as anyhow's).
impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error::user(e.to_string())
    }
}
