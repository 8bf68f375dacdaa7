//! Errors: a profile problem names `file:line:column`; a simulation problem says what
//! in the model or the profile set stopped it.

/// `file:line:column: message`, or `file: message` when no position applies (an
/// unreadable file, a missing directory). Lines and columns are 1-based; `line == 0`
/// means "no position".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ProfileError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ProfileError {
    pub fn at(file: &str, line: u32, column: u32, message: impl Into<String>) -> Self {
        ProfileError {
            file: file.to_string(),
            line,
            column,
            message: one_line(message.into()),
        }
    }

    pub fn file(file: &str, message: impl Into<String>) -> Self {
        Self::at(file, 0, 0, message)
    }

    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!(
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }

    /// Convert a YAML deserialization error, moving its position into the prefix.
    pub(crate) fn from_yaml(file: &str, err: &serde_saphyr::Error) -> Self {
        let text = err.to_string();
        let (line, column) = err
            .location()
            .map(|l| {
                (
                    u32::try_from(l.line()).unwrap_or(u32::MAX),
                    u32::try_from(l.column()).unwrap_or(u32::MAX),
                )
            })
            .unwrap_or((0, 0));
        let message = match text.rfind(" at line ") {
            Some(i) if line != 0 => text[..i].to_string(),
            _ => text,
        };
        Self::at(file, line, column, plain(&message))
    }
}

/// Reword the YAML crate's terse type errors as "what was expected".
fn plain(msg: &str) -> String {
    let m = msg.trim();
    let expected = match m {
        "invalid u8" | "invalid u16" | "invalid u32" | "invalid u64" | "invalid usize" => {
            Some("expected a whole number ≥ 0")
        }
        "invalid f32" | "invalid f64" | "invalid floating point" => Some("expected a number"),
        "invalid bool" | "invalid boolean (strict mode expects true/false)" => {
            Some("expected true or false")
        }
        "expected sequence start" => Some("expected a list ([a, b] or lines starting with `- `)"),
        "expected mapping start" => Some("expected a mapping (`key: value` lines or {key: value})"),
        "expected string scalar" => Some("expected a string"),
        "unexpected end of input" => {
            Some("unexpected end of input: expected a complete YAML mapping")
        }
        _ => None,
    };
    expected.map_or_else(|| m.to_string(), str::to_string)
}

/// Errors are one line: multi-line text from below is folded.
fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

/// Why [`crate::simulate`] could not produce a simulation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A profile (or one it names, e.g. its `fallback_cpu`) is missing or invalid.
    #[error("{0}")]
    Profile(#[from] ProfileError),
    /// The model cannot be simulated (no subgraph, inconsistent tensors).
    #[error("{0}")]
    Model(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
