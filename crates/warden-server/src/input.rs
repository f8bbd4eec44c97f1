//! Every string field of every request is checked at the edge, before any rule or store sees it:
//! no NUL and no other control character (tab and line breaks aside), at most `MAX_STRING_BYTES`.
//! A bad one answers INVALID_ARGUMENT naming the field's path (`grants[0].role_id`), identically on
//! every backend (PostgreSQL cannot store NUL in text; SQLite can). Each rule still checks its own
//! fields' formats and lengths.
use std::sync::LazyLock;

use prost::encoding::decode_varint;
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};
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
    check_encoded(&descriptor, &message.encode_to_vec(), &Path::Root)
}

/// Walks a message's wire encoding with its descriptor: strings are checked where they lie and
/// nested messages walked in place, nothing is decoded into a dynamic message (this runs on every
/// request, CheckPermission's included). The encoding comes from prost, so a malformed one is a bug.
fn check_encoded(
    descriptor: &MessageDescriptor,
    mut bytes: &[u8],
    path: &Path,
) -> Result<(), Error> {
    let malformed = || Error::internal(format!("{}: malformed encoding", descriptor.full_name()));
    // How many of each repeated field came before, for the index in a path.
    let mut seen: Vec<(u32, usize)> = Vec::new();
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes).map_err(|_| malformed())?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed())?;
        let length = match key & 7 {
            0 => {
                decode_varint(&mut bytes).map_err(|_| malformed())?;
                continue;
            }
            1 => 8,
            5 => 4,
            2 => usize::try_from(decode_varint(&mut bytes).map_err(|_| malformed())?)
                .map_err(|_| malformed())?,
            _ => return Err(malformed()),
        };
        let (value, rest) = bytes.split_at_checked(length).ok_or_else(malformed)?;
        bytes = rest;
        let Some(field) = descriptor.get_field(number) else {
            continue;
        };
        // A map's entries are named by the map, as their key and value belong to it.
        let named;
        let here: &Path = match descriptor.is_map_entry() {
            true => path,
            false => {
                named = Path::Field(path, field.name());
                &named
            }
        };
        let indexed;
        let here: &Path = match field.is_list() {
            true => {
                let index = match seen.iter_mut().find(|(seen, _)| *seen == number) {
                    Some((_, count)) => {
                        *count += 1;
                        *count - 1
                    }
                    None => {
                        seen.push((number, 1));
                        0
                    }
                };
                indexed = Path::Index(here, index);
                &indexed
            }
            false => here,
        };
        match field.kind() {
            Kind::String => check_text(std::str::from_utf8(value).map_err(|_| malformed())?, here)?,
            Kind::Message(inner) => check_encoded(&inner, value, here)?,
            _ => {}
        }
    }
    Ok(())
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
        invite.first_name = "Ada".into();
        invite.grants.push(v1::Grant {
            role_id: "read_only".into(),
            entity_ids: vec!["a".into(), "b".into(), "c\u{7f}".into()],
            all_entities: false,
        });
        assert_eq!(
            check_strings(&invite).unwrap_err().to_string(),
            "grants[1].entity_ids[2]: must not contain control characters"
        );
        invite.grants.pop();
        let checks = v1::CheckPermissionsRequest {
            checks: (0..5)
                .map(|index| v1::CheckPermissionRequest {
                    user_id: if index == 3 { "u\0".into() } else { "u".into() },
                    permission: "payments.read".into(),
                    ..Default::default()
                })
                .collect(),
        };
        assert_eq!(
            check_strings(&checks).unwrap_err().to_string(),
            "checks[3].user_id: must not contain control characters"
        );
        invite.first_name = "x".repeat(MAX_STRING_BYTES + 1);
        assert_eq!(
            check_strings(&invite).unwrap_err().to_string(),
            format!("first_name: must be at most {MAX_STRING_BYTES} bytes")
        );
    }
}
