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

/// A certificate's URI subject alternative name as a mapping stores it: `scheme:rest` (RFC 3986's
/// scheme, a non-empty rest), printable ASCII without spaces, at most 2048 characters. Compared
/// exactly, as the certificate carries it: no normalisation, so one URI is never two principals.
pub fn san_uri(field: &'static str, text: &str) -> Result<String, Error> {
    if text.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if text.len() > 2048 {
        return Err(Error::invalid(field, "must be at most 2048 characters"));
    }
    let malformed = || {
        Error::invalid(
            field,
            "must be an absolute URI such as spiffe://acme/payments",
        )
    };
    let (scheme, rest) = text.split_once(':').ok_or_else(malformed)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let rest_ok = !rest.is_empty() && rest != "//" && rest.chars().all(|c| c.is_ascii_graphic());
    if !(scheme_ok && rest_ok) {
        return Err(malformed());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_uris_are_absolute_and_kept_as_given() {
        for good in [
            "spiffe://acme/payments",
            "urn:acme:billing",
            "https://svc.example/x?y=1",
        ] {
            assert_eq!(san_uri("uri", good).unwrap(), good);
        }
        for bad in [
            "",
            "payments",
            ":acme",
            "1spiffe://acme",
            "spiffe:",
            "spiffe://",
            "spiffe://acme/pay ments",
            "spiffe://acme/paymént",
        ] {
            assert!(san_uri("uri", bad).is_err(), "{bad:?} accepted");
        }
        assert!(san_uri("uri", &format!("spiffe://{}", "a".repeat(2048))).is_err());
    }

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
