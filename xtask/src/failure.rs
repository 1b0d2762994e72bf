//! The one error type of xtask: a message for a person, saying what failed
//! and what to do about it.

use std::fmt;

/// Why an xtask command stopped.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    /// Any failure, with the message the user reads.
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }

    /// A command line xtask does not understand; the message ends with a pointer to `help`.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure(format!(
            "{}\n(run `cargo xtask help` for the commands and options)",
            message.into()
        ))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
