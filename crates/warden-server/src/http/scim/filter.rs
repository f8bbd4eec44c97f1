//! The SCIM filter grammar (RFC 7644 §3.4.2.2) and attribute paths (PATCH `path`, §3.5.2), parsed
//! by recursive descent and evaluated on a resource as JSON. Bounded: at most `MAX_LENGTH`
//! characters and `MAX_DEPTH` nested groups, so no filter costs more than its length.
//!
//! `scim-filter` 0.2 was judged and not used: it evaluates only against its own resource types and
//! has no attribute-path parser for PATCH, which this module serves with the same code.
use serde_json::Value;

pub const MAX_LENGTH: usize = 1024;
pub const MAX_DEPTH: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// An attribute path: `name`, `name.sub`, optionally behind a schema URN (dropped).
#[derive(Clone, Debug, PartialEq)]
pub struct AttrPath {
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Compare(AttrPath, Op, Value),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued `attr` matches.
    ValuePath(String, Box<Filter>),
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

pub fn parse(text: &str) -> Result<Filter, String> {
    let mut parser = Parser::new(text)?;
    let filter = parser.or(0)?;
    parser.end()?;
    Ok(filter)
}

pub fn parse_path(text: &str) -> Result<PatchPath, String> {
    let mut parser = Parser::new(text)?;
    let path = parser.attr_path()?;
    let (attr, mut sub) = (path.attr, path.sub);
    let mut filter = None;
    if sub.is_none() && parser.eat("[") {
        filter = Some(parser.or(1)?);
        parser.expect("]")?;
        if parser.eat(".") {
            sub = Some(parser.name()?);
        }
    }
    parser.end()?;
    Ok(PatchPath { attr, filter, sub })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, String> {
        if text.chars().count() > MAX_LENGTH {
            return Err(format!("is longer than {MAX_LENGTH} characters"));
        }
        Ok(Parser { text, at: 0 })
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_spaces();
        if self.rest().starts_with(token) {
            self.at += token.len();
            return true;
        }
        false
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        match self.eat(token) {
            true => Ok(()),
            false => Err(format!("expected {token:?} at character {}", self.at)),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        self.skip_spaces();
        match self.rest().is_empty() {
            true => Ok(()),
            false => Err(format!("unexpected text at character {}", self.at)),
        }
    }

    /// A keyword (`and`, `or`, `not`, an operator) followed by a space or `(`, case-insensitive.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_spaces();
        let rest = self.rest();
        let Some(head) = rest.get(..word.len()) else {
            return false;
        };
        let next = rest[word.len()..].chars().next();
        if head.eq_ignore_ascii_case(word) && matches!(next, None | Some(' ' | '(' | ')' | ']')) {
            self.at += word.len();
            return true;
        }
        false
    }

    fn or(&mut self, depth: usize) -> Result<Filter, String> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, String> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("nests deeper than {MAX_DEPTH}"));
        }
        if self.keyword("not") {
            self.expect("(")?;
            let inner = self.or(depth + 1)?;
            self.expect(")")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat("(") {
            let inner = self.or(depth + 1)?;
            self.expect(")")?;
            return Ok(inner);
        }
        let path = self.attr_path()?;
        if path.sub.is_none() && self.eat("[") {
            let inner = self.or(depth + 1)?;
            self.expect("]")?;
            return Ok(Filter::ValuePath(path.attr, Box::new(inner)));
        }
        if self.keyword("pr") {
            return Ok(Filter::Present(path));
        }
        let op = self.op()?;
        Ok(Filter::Compare(path, op, self.value()?))
    }

    fn op(&mut self) -> Result<Op, String> {
        const OPS: [(&str, Op); 9] = [
            ("eq", Op::Eq),
            ("ne", Op::Ne),
            ("co", Op::Co),
            ("sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("ge", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ];
        for (word, op) in OPS {
            if self.keyword(word) {
                return Ok(op);
            }
        }
        Err(format!("expected an operator at character {}", self.at))
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip_spaces();
        let rest = self.rest();
        let length = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'))
            .unwrap_or(rest.len());
        if length == 0 || !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '$') {
            return Err(format!(
                "expected an attribute name at character {}",
                self.at
            ));
        }
        self.at += length;
        Ok(rest[..length].to_owned())
    }

    /// `[urn:…:]name[.sub]`; the schema URN is dropped (one core schema per resource type).
    fn attr_path(&mut self) -> Result<AttrPath, String> {
        self.skip_spaces();
        let rest = self.rest();
        if rest
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case("urn:"))
        {
            let end = rest.find([' ', '[', '(', ')', ']']).unwrap_or(rest.len());
            let colon = rest[..end].rfind(':').unwrap_or(0);
            self.at += colon + 1;
        }
        let attr = self.name()?;
        let sub = match self.rest().starts_with('.') {
            true => {
                self.at += 1;
                Some(self.name()?)
            }
            false => None,
        };
        Ok(AttrPath { attr, sub })
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_spaces();
        for (word, value) in [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("null", Value::Null),
        ] {
            if self.keyword(word) {
                return Ok(value);
            }
        }
        let rest = self.rest();
        if rest.starts_with('"') {
            // A JSON string: find its closing quote, honouring escapes.
            let mut escaped = false;
            for (index, c) in rest.char_indices().skip(1) {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        let literal = &rest[..=index];
                        self.at += index + 1;
                        return serde_json::from_str(literal).map_err(|error| error.to_string());
                    }
                    _ => {}
                }
            }
            return Err("unterminated string".into());
        }
        let end = rest.find([' ', ')', ']']).unwrap_or(rest.len());
        let number: Value = serde_json::from_str(&rest[..end])
            .map_err(|_| format!("expected a value at character {}", self.at))?;
        if !number.is_number() {
            return Err(format!("expected a value at character {}", self.at));
        }
        self.at += end;
        Ok(number)
    }
}

/// The member of `object` named `name`, case-insensitively (SCIM attribute names are).
pub fn member<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// Every value at `path` in `resource`, multi-valued attributes flattened.
fn values<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(top) = member(resource, &path.attr) else {
        return vec![];
    };
    let tops: Vec<&Value> = match top {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => tops,
        Some(sub) => tops
            .into_iter()
            .filter_map(|top| member(top, sub))
            .collect(),
    }
}

fn compare(found: &Value, op: Op, wanted: &Value) -> bool {
    match (found, wanted) {
        (Value::String(found), Value::String(wanted)) => {
            let (found, wanted) = (found.to_lowercase(), wanted.to_lowercase());
            match op {
                Op::Eq => found == wanted,
                Op::Ne => found != wanted,
                Op::Co => found.contains(&wanted),
                Op::Sw => found.starts_with(&wanted),
                Op::Ew => found.ends_with(&wanted),
                Op::Gt => found > wanted,
                Op::Ge => found >= wanted,
                Op::Lt => found < wanted,
                Op::Le => found <= wanted,
            }
        }
        (Value::Number(found), Value::Number(wanted)) => {
            let (Some(found), Some(wanted)) = (found.as_f64(), wanted.as_f64()) else {
                return false;
            };
            match op {
                Op::Eq => found == wanted,
                Op::Ne => found != wanted,
                Op::Gt => found > wanted,
                Op::Ge => found >= wanted,
                Op::Lt => found < wanted,
                Op::Le => found <= wanted,
                Op::Co | Op::Sw | Op::Ew => false,
            }
        }
        (found, wanted) => match op {
            Op::Eq => found == wanted,
            Op::Ne => found != wanted,
            _ => false,
        },
    }
}

pub fn matches(resource: &Value, filter: &Filter) -> bool {
    match filter {
        Filter::Compare(path, Op::Ne, wanted) => !values(resource, path)
            .into_iter()
            .any(|found| compare(found, Op::Eq, wanted)),
        Filter::Compare(path, op, wanted) => values(resource, path)
            .into_iter()
            .any(|found| compare(found, *op, wanted)),
        Filter::Present(path) => values(resource, path).into_iter().any(|found| match found {
            Value::Null => false,
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            _ => true,
        }),
        Filter::And(left, right) => matches(resource, left) && matches(resource, right),
        Filter::Or(left, right) => matches(resource, left) || matches(resource, right),
        Filter::Not(inner) => !matches(resource, inner),
        Filter::ValuePath(attr, inner) => match member(resource, attr) {
            Some(Value::Array(items)) => items.iter().any(|item| matches(item, inner)),
            Some(single) => matches(single, inner),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "userName": "Ada@Example.com",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "value": "ada@example.com", "type": "work" }],
            "active": true,
            "meta": { "created": "2026-12-01T10:00:00Z" },
        })
    }

    #[test]
    fn the_operators_and_logic_of_rfc_7644_match_as_specified() {
        let user = user();
        for (filter, expected) in [
            (r#"userName eq "ada@example.com""#, true),
            (r#"USERNAME Eq "ADA@example.com""#, true),
            (r#"userName ne "ada@example.com""#, false),
            (r#"name.familyName co "love""#, true),
            (r#"userName sw "ada" and userName ew ".com""#, true),
            (r#"emails[type eq "work" and value co "@example"]"#, true),
            (r#"emails[type eq "home"]"#, false),
            (r#"emails.value eq "ada@example.com""#, true),
            ("title pr", false),
            ("userName pr and active eq true", true),
            (r#"not (active eq true) or (userName eq "x")"#, false),
            (r#"meta.created gt "2026-11-30T00:00:00Z""#, true),
            (r#"meta.created le "2026-11-30T00:00:00Z""#, false),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada@example.com""#,
                true,
            ),
        ] {
            let parsed = parse(filter).unwrap_or_else(|error| panic!("{filter}: {error}"));
            assert_eq!(matches(&user, &parsed), expected, "{filter}");
        }
    }

    #[test]
    fn malformed_deep_and_long_filters_are_refused() {
        for filter in [
            "",
            "userName",
            "userName eq",
            r#"userName zz "a""#,
            r#"(userName eq "a""#,
            r#"userName eq "a" junk"#,
            r#"userName eq "unterminated"#,
        ] {
            assert!(parse(filter).is_err(), "{filter:?}");
        }
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().contains("deeper"));
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_LENGTH));
        assert!(parse(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn patch_paths_name_an_attribute_a_sub_attribute_and_a_value_filter() {
        let path = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(path.attr, "emails");
        assert_eq!(path.sub.as_deref(), Some("value"));
        assert!(path.filter.is_some());
        let path = parse_path("name.givenName").unwrap();
        assert_eq!(
            (path.attr.as_str(), path.sub.as_deref()),
            ("name", Some("givenName"))
        );
        assert!(parse_path("members[value eq").is_err());
    }

    proptest! {
        /// Any text at all parses or is refused: never a panic, whatever its nesting or length.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse(&text);
            let _ = parse_path(&text);
        }

        /// A quoted value round-trips through the grammar, whatever characters it holds.
        #[test]
        fn quoted_values_compare_equal_to_themselves(value in "[^\u{0}-\u{1f}]{0,40}") {
            let filter = format!("userName eq {}", Value::String(value.clone()));
            let parsed = parse(&filter).unwrap();
            let resource = json!({ "userName": value });
            prop_assert!(matches(&resource, &parsed));
        }

        /// `not` negates, and nesting up to the bound parses.
        #[test]
        fn not_negates_and_nesting_within_the_bound_parses(depth in 0usize..MAX_DEPTH - 1, present in any::<bool>()) {
            let inner = format!("{}title pr{}", "(".repeat(depth), ")".repeat(depth));
            let resource = match present { true => json!({ "title": "x" }), false => json!({}) };
            let plain = parse(&inner).unwrap();
            let negated = parse(&format!("not ({inner})")).unwrap();
            prop_assert_eq!(matches(&resource, &plain), present);
            prop_assert_eq!(matches(&resource, &negated), !present);
        }
    }
}
