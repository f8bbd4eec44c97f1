//! The password policy of SPEC §4 (NIST SP 800-63B rev. 4): length only, no composition rules,
//! refused when common. Hashing lives in the server; this decides what may be hashed.
use std::collections::HashSet;

use crate::Error;

/// Bundled list of common and breached passwords, one per line, compared case-insensitively.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    /// Accepted lengths go at least this far; nothing is ever truncated. The bound stops a caller
    /// from making the server hash megabytes.
    pub max_chars: usize,
    common: HashSet<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new(15, 256)
    }
}

impl PasswordPolicy {
    pub fn new(min_chars: usize, max_chars: usize) -> Self {
        let common = COMMON_PASSWORDS
            .lines()
            .map(normalise)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect();
        Self {
            min_chars,
            max_chars,
            common,
        }
    }

    /// Checks a new password; `field` names it in the error. The password is never echoed back.
    pub fn check(&self, field: &'static str, password: &str) -> Result<(), Error> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(Error::invalid(
                field,
                format!("must be at least {} characters", self.min_chars),
            ));
        }
        if chars > self.max_chars {
            return Err(Error::invalid(
                field,
                format!("must be at most {} characters", self.max_chars),
            ));
        }
        if self.is_common(password) {
            return Err(Error::invalid(field, "is too common; choose another"));
        }
        Ok(())
    }

    /// On the bundled list, or one character repeated, or the list's entry repeated (`passwordpassword`),
    /// ignoring case and whitespace (`Correct Horse Battery Staple` is the listed passphrase).
    fn is_common(&self, password: &str) -> bool {
        let lower = normalise(password);
        if self.common.contains(&lower) {
            return true;
        }
        let mut chars = lower.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return true;
        }
        self.common.iter().any(|word| {
            word.len() >= 4
                && lower.len().is_multiple_of(word.len())
                && lower == word.repeat(lower.len() / word.len())
        })
    }
}

fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_the_only_composition_rule() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("password", "short").unwrap_err().to_string(),
            "password: must be at least 15 characters"
        );
        assert!(
            policy
                .check("password", "vivid orchard lantern mosaic")
                .is_ok()
        );
        assert!(
            policy
                .check("password", &"long enough passphrase ".repeat(5))
                .is_ok()
        ); // 115 chars
        assert!(policy.check("password", &"x".repeat(257)).is_err());
    }

    #[test]
    fn common_and_repeated_passwords_are_refused() {
        let policy = PasswordPolicy::default();
        for weak in [
            "passwordpassword",
            "123456789012345",
            "aaaaaaaaaaaaaaaa",
            "QwertyuiopAsdfgh",
            "iloveyouiloveyou",
        ] {
            assert_eq!(
                policy.check("password", weak).unwrap_err().to_string(),
                "password: is too common; choose another",
                "{weak}"
            );
        }
    }
}
