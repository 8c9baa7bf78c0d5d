//! [`ToolError`]: why a tool call failed, worded for the LLM.

use std::fmt;

/// Why a tool call failed (the WIT variant `tool-error`).
///
/// The message is read by the LLM, so say what went wrong and, where it
/// helps, what to do instead: `"No contact found for 'Jon Smiht'"`.
///
/// ```
/// use switchboard_sdk::ToolError;
///
/// fn check(day: &str) -> Result<(), ToolError> {
///     if day.is_empty() {
///         return Err(ToolError::invalid_arguments("`day` must not be empty"));
///     }
///     Err("the calendar is offline".into()) // `From<&str>` gives `Failed`
/// }
/// assert_eq!(check(""), Err(ToolError::InvalidArguments("`day` must not be empty".into())));
/// assert_eq!(check("monday"), Err(ToolError::Failed("the calendar is offline".into())));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolError {
    /// The arguments did not match what the tool expects. The SDK returns
    /// this itself when the arguments do not deserialize into the tool's
    /// argument type.
    InvalidArguments(String),
    /// The thing asked for does not exist (no such contact, no free slot).
    NotFound(String),
    /// Anything else went wrong.
    Failed(String),
}

impl ToolError {
    /// The arguments did not match what the tool expects.
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        Self::InvalidArguments(message.into())
    }

    /// The thing asked for does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// Anything else went wrong.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidArguments(m) | Self::NotFound(m) | Self::Failed(m) => m,
        }
    }

    /// The WIT case name: `invalid-arguments`, `not-found` or `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArguments(_) => "invalid-arguments",
            Self::NotFound(_) => "not-found",
            Self::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for ToolError {}

/// A bare message is a [`ToolError::Failed`].
impl From<String> for ToolError {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

/// A bare message is a [`ToolError::Failed`].
impl From<&str> for ToolError {
    fn from(message: &str) -> Self {
        Self::Failed(message.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_accessors() {
        let e = ToolError::not_found("nothing here");
        assert_eq!(e, ToolError::NotFound("nothing here".into()));
        assert_eq!(e.kind(), "not-found");
        assert_eq!(e.message(), "nothing here");
        assert_eq!(e.to_string(), "not-found: nothing here");
        assert_eq!(ToolError::invalid_arguments(String::from("x")).kind(), "invalid-arguments");
        assert_eq!(ToolError::failed("x"), ToolError::from("x"));
        assert_eq!(ToolError::from(String::from("y")), ToolError::Failed("y".into()));
    }
}
