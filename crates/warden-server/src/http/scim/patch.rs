//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON: `add`, `replace` and `remove`, with
//! or without a path, paths with value filters (`emails[type eq "work"].value`,
//! `members[value eq "…"]`). The resource handlers then write the difference, as a PUT would.
use serde::Deserialize;
use serde_json::{Map, Value};

use super::filter::{self, PatchPath};

#[derive(Deserialize)]
pub struct PatchOp {
    pub op: String,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Why an operation does not apply: (scimType, message).
pub type Refusal = (&'static str, String);

/// The key of `object` matching `name` case-insensitively, or `name` itself for a new key.
fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn object(value: &mut Value) -> Result<&mut Map<String, Value>, Refusal> {
    value
        .as_object_mut()
        .ok_or(("invalidPath", "path does not name an attribute".into()))
}

/// Sets `name` in `target`: `add` appends to a multi-valued attribute, merges into a complex one.
fn put(target: &mut Map<String, Value>, name: &str, value: Value, add: bool) {
    let key = key_of(target, name);
    match (target.get_mut(&key), value) {
        (Some(Value::Array(items)), Value::Array(more)) if add => {
            for item in more {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
        }
        (Some(Value::Object(fields)), Value::Object(more)) => {
            for (name, value) in more {
                put(fields, &name, value, add);
            }
        }
        (_, value) => {
            target.insert(key, value);
        }
    }
}

pub fn apply(resource: &mut Value, op: &PatchOp) -> Result<(), Refusal> {
    let kind = op.op.to_ascii_lowercase();
    if !matches!(kind.as_str(), "add" | "replace" | "remove") {
        return Err((
            "invalidSyntax",
            format!("op: unknown operation {:?}", op.op),
        ));
    }
    let path = match op.path.as_deref() {
        Some(text) => Some(
            filter::parse_path(text).map_err(|error| ("invalidPath", format!("path: {error}")))?,
        ),
        None => None,
    };
    match (kind.as_str(), path, op.value.clone()) {
        ("remove", None, _) => Err(("noTarget", "remove needs a path".into())),
        (_, None, Some(Value::Object(fields))) => {
            let target = object(resource)?;
            for (name, value) in fields {
                match filter::parse_path(&name) {
                    Ok(path) if path.filter.is_none() => {
                        set_path(target, &path, value, kind == "add")?
                    }
                    _ => return Err(("invalidPath", format!("value: bad attribute {name:?}"))),
                }
            }
            Ok(())
        }
        (_, None, _) => Err((
            "invalidValue",
            "value: must be an object without a path".into(),
        )),
        ("remove", Some(path), value) => remove(object(resource)?, &path, value),
        (_, Some(_), None) => Err(("invalidValue", "value: is required".into())),
        (_, Some(path), Some(value)) => match &path.filter {
            None => set_path(object(resource)?, &path, value, kind == "add"),
            Some(wanted) => {
                let items = matching(object(resource)?, &path.attr, wanted)?;
                for item in items {
                    match (&path.sub, item) {
                        (Some(sub), Value::Object(fields)) => {
                            put(fields, sub, value.clone(), false)
                        }
                        (None, Value::Object(fields)) => match &value {
                            Value::Object(more) => {
                                for (name, value) in more {
                                    put(fields, name, value.clone(), false);
                                }
                            }
                            _ => return Err(("invalidValue", "value: must be an object".into())),
                        },
                        _ => return Err(("invalidPath", "path: not a complex attribute".into())),
                    }
                }
                Ok(())
            }
        },
    }
}

fn set_path(
    target: &mut Map<String, Value>,
    path: &PatchPath,
    value: Value,
    add: bool,
) -> Result<(), Refusal> {
    match &path.sub {
        None => put(target, &path.attr, value, add),
        Some(sub) => {
            let key = key_of(target, &path.attr);
            let parent = target
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            put(object(parent)?, sub, value, add);
        }
    }
    Ok(())
}

/// The elements of the multi-valued `attr` that match `wanted`; none is `noTarget`.
fn matching<'v>(
    target: &'v mut Map<String, Value>,
    attr: &str,
    wanted: &filter::Filter,
) -> Result<Vec<&'v mut Value>, Refusal> {
    let key = key_of(target, attr);
    let found: Vec<&mut Value> = match target.get_mut(&key) {
        Some(Value::Array(items)) => items
            .iter_mut()
            .filter(|item| filter::matches(item, wanted))
            .collect(),
        _ => vec![],
    };
    if found.is_empty() {
        return Err(("noTarget", format!("path: no {attr} value matches")));
    }
    Ok(found)
}

fn remove(
    target: &mut Map<String, Value>,
    path: &PatchPath,
    value: Option<Value>,
) -> Result<(), Refusal> {
    let key = key_of(target, &path.attr);
    match (&path.filter, &path.sub) {
        (None, None) => {
            // Entra ID removes members as `{"path": "members", "value": [{"value": id}]}`.
            match (target.get_mut(&key), value) {
                (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                    let gone: Vec<&Value> =
                        gone.iter().filter_map(|item| item.get("value")).collect();
                    items.retain(|item| !item.get("value").is_some_and(|id| gone.contains(&id)));
                }
                _ => {
                    target.remove(&key);
                }
            }
        }
        (None, Some(sub)) => {
            if let Some(Value::Object(fields)) = target.get_mut(&key) {
                let sub_key = key_of(fields, sub);
                fields.remove(&sub_key);
            }
        }
        (Some(wanted), sub) => {
            if let Some(Value::Array(items)) = target.get_mut(&key) {
                match sub {
                    None => items.retain(|item| !filter::matches(item, wanted)),
                    Some(sub) => {
                        for item in items
                            .iter_mut()
                            .filter(|item| filter::matches(item, wanted))
                        {
                            if let Value::Object(fields) = item {
                                let sub_key = key_of(fields, sub);
                                fields.remove(&sub_key);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn op(op: &str, path: Option<&str>, value: Value) -> PatchOp {
        PatchOp {
            op: op.into(),
            path: path.map(str::to_owned),
            value: Some(value),
        }
    }

    #[test]
    fn okta_and_entra_patches_apply() {
        let mut user = json!({
            "userName": "a@x.io",
            "active": true,
            "name": { "givenName": "A" },
            "emails": [{ "value": "a@x.io", "type": "work" }],
        });
        apply(&mut user, &op("replace", None, json!({ "active": false }))).unwrap();
        assert_eq!(user["active"], false);
        apply(
            &mut user,
            &op("Replace", Some("name.familyName"), json!("B")),
        )
        .unwrap();
        assert_eq!(user["name"], json!({ "givenName": "A", "familyName": "B" }));
        let work = r#"emails[type eq "work"].value"#;
        apply(&mut user, &op("replace", Some(work), json!("b@x.io"))).unwrap();
        assert_eq!(user["emails"][0]["value"], "b@x.io");
        apply(
            &mut user,
            &op("replace", None, json!({ "name.givenName": "C" })),
        )
        .unwrap();
        assert_eq!(user["name"]["givenName"], "C");

        let mut group = json!({ "displayName": "G", "members": [{ "value": "1" }] });
        apply(
            &mut group,
            &op("add", Some("members"), json!([{ "value": "2" }])),
        )
        .unwrap();
        assert_eq!(group["members"].as_array().unwrap().len(), 2);
        apply(
            &mut group,
            &op("remove", Some("members"), json!([{ "value": "1" }])),
        )
        .unwrap();
        assert_eq!(group["members"], json!([{ "value": "2" }]));
        let by_filter = PatchOp {
            op: "remove".into(),
            path: Some(r#"members[value eq "2"]"#.into()),
            value: None,
        };
        apply(&mut group, &by_filter).unwrap();
        assert_eq!(group["members"], json!([]));
    }

    #[test]
    fn bad_operations_are_refused_with_a_scim_type() {
        let mut user = json!({ "emails": [] });
        assert_eq!(
            apply(&mut user, &op("move", None, json!({})))
                .unwrap_err()
                .0,
            "invalidSyntax"
        );
        assert_eq!(
            apply(&mut user, &op("replace", Some("a[b"), json!(1)))
                .unwrap_err()
                .0,
            "invalidPath"
        );
        let missing = r#"emails[type eq "home"].value"#;
        assert_eq!(
            apply(&mut user, &op("replace", Some(missing), json!("x")))
                .unwrap_err()
                .0,
            "noTarget"
        );
        assert_eq!(
            apply(&mut user, &op("add", None, json!(3))).unwrap_err().0,
            "invalidValue"
        );
    }
}
