//! Every string field of every request is checked at the edge, before any rule or store sees it:
//! no NUL and no other control character (tab and line breaks aside), at most `MAX_STRING_BYTES`.
//! A bad one answers INVALID_ARGUMENT naming the field's path (`grants[0].role_id`), identically on
//! every backend (PostgreSQL cannot store NUL in text; SQLite can). Each rule still checks its own
//! fields' formats and lengths.
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};
use warden_core::Error;

/// Far above every field's own limit (the largest is an SSO JWK set), far below the 1 MiB message.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(warden_proto::FILE_DESCRIPTOR_SET).map_err(|error| error.to_string())
});

/// Fails on the first string field, at any depth, that holds a control character or is too long.
pub fn check_strings<T: prost::Message + prost::Name>(message: &T) -> Result<(), Error> {
    let pool = POOL
        .as_ref()
        .map_err(|error| Error::internal(error.clone()))?;
    let descriptor = pool
        .get_message_by_name(&T::full_name())
        .ok_or_else(|| Error::internal(format!("no descriptor for {}", T::full_name())))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(Error::internal)?;
    check_message(&dynamic, &Path::Root)
}

/// Where a value sits in the request (`grants[0].role_id`), written out only when it fails: a
/// request that passes (nearly all) allocates no path.
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => formatter.write_str(name),
            Path::Field(parent, name) => write!(formatter, "{parent}.{name}"),
            Path::Index(parent, index) => write!(formatter, "{parent}[{index}]"),
        }
    }
}

fn check_message(message: &DynamicMessage, path: &Path) -> Result<(), Error> {
    for (field, value) in message.fields() {
        check_value(value, &Path::Field(path, field.name()))?;
    }
    Ok(())
}

fn check_value(value: &Value, path: &Path) -> Result<(), Error> {
    match value {
        Value::String(text) => check_text(text, path),
        Value::Message(inner) => check_message(inner, path),
        Value::List(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| check_value(item, &Path::Index(path, index))),
        Value::Map(entries) => entries.iter().try_for_each(|(key, item)| {
            if let MapKey::String(key) = key {
                check_text(key, path)?;
            }
            check_value(item, path)
        }),
        _ => Ok(()),
    }
}

fn check_text(text: &str, path: &Path) -> Result<(), Error> {
    if text.len() > MAX_STRING_BYTES {
        return Err(Error::invalid(
            path.to_string(),
            format!("must be at most {MAX_STRING_BYTES} bytes"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Error::invalid(
            path.to_string(),
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use warden_proto::v1;

    use super::*;

    #[test]
    fn nested_and_repeated_strings_are_checked_and_named_by_path() {
        let mut invite = v1::InviteUserRequest {
            organization_id: "0190aa00-0000-7000-8000-000000000000".into(),
            email: "ada@example.com".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace\tKing".into(),
            grants: vec![v1::Grant {
                role_id: "read_only".into(),
                entity_ids: vec![],
                all_entities: true,
            }],
            direct_permissions: vec![],
        };
        assert!(check_strings(&invite).is_ok(), "a tab is fine");
        invite.grants[0].role_id = "read\0only".into();
        assert_eq!(
            check_strings(&invite).unwrap_err().to_string(),
            "grants[0].role_id: must not contain control characters"
        );
        invite.grants[0].role_id = "read_only".into();
        invite.first_name = "\u{1b}[31m".into();
        assert!(check_strings(&invite).is_err());
        invite.first_name = "x".repeat(MAX_STRING_BYTES + 1);
        assert_eq!(
            check_strings(&invite).unwrap_err().to_string(),
            format!("first_name: must be at most {MAX_STRING_BYTES} bytes")
        );
    }
}
