//! Input rules shared by every RPC: names and emails. Each failure names the field.
use crate::Error;

/// Trims a display name and checks it is 1..=`max` characters with no control characters.
pub fn name(field: &'static str, text: &str, max: usize) -> Result<String, Error> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if trimmed.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// An email address, trimmed and lowercased: the sign-in key, compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain` with a dotted domain, at most 254 characters (RFC 5321's path limit).
    pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
        let email = text.trim().to_lowercase();
        if email.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        if email.len() > 254 {
            return Err(Error::invalid(field, "must be at most 254 characters"));
        }
        let malformed = || Error::invalid(field, "must be an email address");
        let (local, domain) = email.split_once('@').ok_or_else(malformed)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '@');
        if !(domain_ok && local_ok) {
            return Err(malformed());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_malformed_ones_refused() {
        assert_eq!(
            Email::parse("email", " Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@ex..com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Email::parse("owner_email", "x").unwrap_err().to_string(),
            "owner_email: must be an email address"
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", "  Acme ", 10).unwrap(), "Acme");
        assert_eq!(
            name("name", "  ", 10).unwrap_err().to_string(),
            "name: is required"
        );
        assert_eq!(
            name("name", &"x".repeat(11), 10).unwrap_err().to_string(),
            "name: must be at most 10 characters"
        );
    }
}
