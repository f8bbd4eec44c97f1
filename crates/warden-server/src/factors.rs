//! Second-factor mechanics: TOTP (RFC 6238 with totp-rs: 30-second steps, ±1 step, each step once)
//! and one-time email/SMS codes (6 random digits, stored hashed, bound to what they were sent for).
use chrono::{DateTime, Utc};
use totp_rs::{Builder, Secret};
use warden_core::Error;

use crate::secrets::{random_bytes, sha256_hex};

fn totp(secret: &[u8], account: &str) -> Result<totp_rs::Totp, Error> {
    Builder::new()
        .with_secret(secret.to_vec())
        .with_skew(1)
        .with_issuer(Some("Warden"))
        .with_account_name(account)
        .build()
        .map_err(|err| Error::internal(err.to_string()))
}

/// A new TOTP secret, its base32 form for manual entry, and the `otpauth://` URI for a QR code.
pub fn new_totp(account: &str) -> Result<(Vec<u8>, String, String), Error> {
    let secret = random_bytes::<20>()?.to_vec(); // 160 bits, as RFC 4226 recommends.
    let uri = totp(&secret, account)?
        .to_url()
        .map_err(|err| Error::internal(err.to_string()))?;
    Ok((secret.clone(), Secret::from(secret).to_base32(), uri))
}

/// The step a code matches at `now`, within ±1 step; `None` when it matches none.
pub fn totp_step(secret: &[u8], code: &str, now: DateTime<Utc>) -> Result<Option<i64>, Error> {
    let seconds = u64::try_from(now.timestamp()).map_err(Error::internal)?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp(secret, "")?
        .check(code, seconds)
        .and_then(|step| i64::try_from(step).ok()))
}

/// Six random digits (uniform: a rejection sample of a 32-bit number).
pub fn new_code() -> Result<String, Error> {
    loop {
        let value = u32::from_le_bytes(random_bytes::<4>()?);
        if value < 4_294_000_000 {
            return Ok(format!("{:06}", value % 1_000_000));
        }
    }
}

/// A code's hash is bound to what it was issued for, so a code never works elsewhere.
pub fn code_hash(bound_to: &str, code: &str) -> String {
    sha256_hex(&format!("{bound_to}:{}", code.trim()))
}

/// E.164: a plus and 8 to 15 digits.
pub fn phone_number(text: &str) -> Result<String, Error> {
    let digits = text.trim().strip_prefix('+').unwrap_or_default();
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("+{digits}"))
    } else {
        Err(Error::invalid(
            "phone_number",
            "must be in E.164 form, such as +4915112345678",
        ))
    }
}

/// All but the last two digits hidden, for listings.
pub fn masked(phone: &str) -> String {
    let keep = phone.len().saturating_sub(2);
    format!("{}{}", "*".repeat(keep), &phone[keep..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_totp_code_matches_its_step_and_its_neighbours_only() {
        let (secret, base32, uri) = new_totp("ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/") && uri.contains(&base32));
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let code = totp(&secret, "").unwrap().generate(now.timestamp() as u64);
        let step = now.timestamp() / 30;
        assert_eq!(
            totp_step(&secret, &code.to_string(), now).unwrap(),
            Some(step)
        );
        assert_eq!(
            totp_step(
                &secret,
                &code.to_string(),
                now + chrono::Duration::seconds(30)
            )
            .unwrap(),
            Some(step)
        );
        assert_eq!(
            totp_step(
                &secret,
                &code.to_string(),
                now + chrono::Duration::seconds(90)
            )
            .unwrap(),
            None
        );
        assert_eq!(totp_step(&secret, "12345x", now).unwrap(), None);
    }

    #[test]
    fn codes_are_six_digits_and_phones_are_e164() {
        let code = new_code().unwrap();
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(phone_number(" +4915112345678 ").unwrap(), "+4915112345678");
        assert!(phone_number("015112345678").is_err());
        assert_eq!(masked("+4915112345678"), "************78");
        assert_ne!(code_hash("a", "123456"), code_hash("b", "123456"));
    }
}
