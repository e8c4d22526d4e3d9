//! What a failed command reports: [`CliError`], a message with its context and the exit code.

use std::process::ExitCode;

/// A failed command: what went wrong, with its context (displayed without trailing whitespace).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong (exit code 2); the message is clap's, with the usage.
    #[error("{}", .0.trim_end())]
    Usage(String),
    /// The command failed (exit code 1).
    #[error("{}", .0.trim_end())]
    Failed(String),
}

impl CliError {
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        CliError::Failed(message.into())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(1),
        }
    }
}
