//! A wrapper for values that must never reach a log: static passwords, OTPs, keys, message bodies
//! that carry an OTP. `Debug` prints a placeholder and the bytes are wiped when dropped.

use std::fmt;
use zeroize::Zeroize;

/// A secret string. Read it with [`Secret::expose`], deliberately and rarely.
#[derive(Clone, Default)]
pub struct Secret(String);

/// Constant-time, so comparing secrets never leaks how much of them matched.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
