//! Failures that stop the decoder, and the exit code each one maps to.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | decoded (damage found in the input is reported, not fatal) |
//! | 1 | `check`: a budget was exceeded |
//! | 2 | usage error (bad arguments, including `--session N` past the input's sessions) |
//! | 3 | the input cannot be read (missing file, permission, I/O error) |
//! | 4 | the input is not a memscope trace, or of a newer format version |
//! | 5 | an ELF or debug file given with `--elf` is missing, unreadable or does not match the trace |
//! | 6 | an output file cannot be written |

use std::fmt;

/// Exit codes, see the module docs.
pub mod exit {
    /// Decoded.
    pub const OK: i32 = 0;
    /// A `check` budget was exceeded.
    pub const CHECK_FAILED: i32 = 1;
    /// Bad arguments.
    pub const USAGE: i32 = 2;
    /// Input unreadable.
    pub const UNREADABLE: i32 = 3;
    /// Not a memscope trace or unsupported version.
    pub const NOT_A_TRACE: i32 = 4;
    /// ELF missing or mismatched.
    pub const ELF: i32 = 5;
    /// Output not writable.
    pub const OUTPUT: i32 = 6;
}

/// Why decoding stopped.
#[derive(Debug)]
pub enum Error {
    /// The input cannot be read.
    Unreadable {
        /// Input name.
        input: String,
        /// Byte offset reached, when reading had started.
        offset: Option<u64>,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// Not a memscope trace, or one this decoder cannot read.
    NotATrace {
        /// Input name.
        input: String,
        /// Where the problem was found.
        offset: u64,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The ELF or debug file given is unusable.
    Elf {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An argument names something the input does not have (e.g.
    /// `--session 5` of a trace with two sessions): a usage error, found
    /// only once the input was read.
    Usage {
        /// Input name.
        input: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An output cannot be written.
    Output {
        /// The file.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unreadable { .. } => exit::UNREADABLE,
            Error::NotATrace { .. } => exit::NOT_A_TRACE,
            Error::Elf { .. } => exit::ELF,
            Error::Output { .. } => exit::OUTPUT,
            Error::Usage { .. } => exit::USAGE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreadable {
                input,
                offset: Some(o),
                cause,
            } => write!(f, "{input}: read error at byte {o}: {cause}"),
            Error::Unreadable { input, cause, .. } => write!(f, "{input}: cannot read: {cause}"),
            Error::NotATrace {
                input,
                offset,
                reason,
            } => write!(f, "{input}: at byte {offset}: {reason}"),
            Error::Elf { path, reason } => write!(f, "{path}: {reason}"),
            Error::Output { path, cause } => write!(f, "{path}: cannot write: {cause}"),
            Error::Usage { input, reason } => write!(f, "{input}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
