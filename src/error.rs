//! One error type for the whole engine. Every user mistake and every GPU fault becomes a value of
//! [`Error`]; nothing in the library panics on user input or on what the driver reports.

use std::fmt;

/// A rank-4 NCHW shape as printed in error messages: `(N, C, H, W)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape(pub [usize; 4]);

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [n, c, h, w] = self.0;
        write!(f, "({n}, {c}, {h}, {w})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// wgpu found no adapter at all (or none matching the environment's selection).
    #[error("no GPU adapter found{selection}. {hint}")]
    NoAdapter { selection: String, hint: String },

    #[error("could not create a device on adapter '{adapter}': {reason}")]
    RequestDevice { adapter: String, reason: String },

    /// A tensor or argument has the wrong shape: `what` names the tensor, `expected` and `found`
    /// say the rest.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        what: String,
        expected: String,
        found: String,
    },

    /// An invalid argument that is not a shape (a dilation of 0, an empty list, ...).
    #[error("{what}: {message}")]
    InvalidArgument { what: String, message: String },

    /// A tensor needs more bytes than one storage binding may address on this device.
    #[error(
        "{what} needs {bytes} bytes, more than this device's max storage buffer binding size \
         ({limit} bytes, wgpu limit `max_storage_buffer_binding_size`)"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
    },

    /// The GPU rejected a command (wgpu validation error).
    #[error("GPU validation error in {during}: {message}")]
    Validation { during: String, message: String },

    #[error("GPU out of memory in {during}: {message}")]
    OutOfMemory { during: String, message: String },

    #[error("GPU internal error in {during}: {message}")]
    Internal { during: String, message: String },

    /// The device was lost (driver reset, GPU removed, or a timeout waiting for it).
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// Reading, writing or parsing a file.
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn file(path: impl fmt::Display, message: impl fmt::Display) -> Self {
        Error::File {
            path: path.to_string(),
            message: message.to_string(),
        }
    }

    /// Converts an error captured from wgpu (by an error scope or the uncaptured-error handler).
    pub(crate) fn from_wgpu(during: &str, error: wgpu::Error) -> Self {
        let during = during.to_string();
        // wgpu's description is often just "Validation Error"; the cause is in the source chain.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        match error {
            wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory { during, message },
            wgpu::Error::Validation { .. } => Error::Validation { during, message },
            wgpu::Error::Internal { .. } => Error::Internal { during, message },
        }
    }
}
