//! The AuthZEN Authorization API 1.0 (OpenID, `api/authorization-api-1_0.md`): evaluation,
//! evaluations, and subject, resource and action search, answered by the CheckPermission code itself
//! (`services/authorization.rs`), so both APIs give the same decision at the same consistency.
//!
//! Mapping: subject `{"type": "user", "id": <user id>}`, action `{"name": <permission key>}`,
//! resource `{"type": "entity", "id": <entity id>}` or `{"type": "organization", "id": <org id>}`.
//! The organisation is the calling API key's. `context.consistency` is `"minimize_latency"`,
//! `"fully_consistent"` or `{"at_least_as_fresh": <consistency token>}`; `context.explain: true`
//! puts the reason in the decision's `context.reason`. Other keys and `properties` are ignored.
use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::Value;
use warden_core::{Error, ids::OrganizationId};
use warden_proto::v1::{self, consistency::Requirement};

use super::{Connection, Http, caller, error_response, json, parse};
use crate::{
    input::check_strings,
    services::authorization::{self, MAX_BATCH},
    state::Caller,
};

#[derive(Clone, Deserialize)]
struct Subject {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Clone, Deserialize)]
struct Resource {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Clone, Deserialize)]
struct Action {
    name: String,
}

/// One evaluation as sent; in `evaluations`, missing keys come from the top-level defaults.
#[derive(Clone, Default, Deserialize)]
struct Evaluation {
    subject: Option<Subject>,
    action: Option<Action>,
    resource: Option<Resource>,
    context: Option<Value>,
}

#[derive(Deserialize)]
struct Evaluations {
    #[serde(flatten)]
    defaults: Evaluation,
    #[serde(default)]
    evaluations: Vec<Evaluation>,
    #[serde(default)]
    options: Options,
}

#[derive(Default, Deserialize)]
struct Options {
    evaluations_semantic: Option<String>,
}

#[derive(Deserialize)]
struct ActionSearch {
    subject: Option<Subject>,
    resource: Option<Resource>,
    context: Option<Value>,
    #[serde(default)]
    page: PageRequest,
}

/// A subject or resource search: the searched side names its type only.
#[derive(Deserialize)]
struct Search {
    subject: Option<Searched>,
    action: Option<Action>,
    resource: Option<Searched>,
    context: Option<Value>,
    #[serde(default)]
    page: PageRequest,
}

#[derive(Deserialize)]
struct Searched {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: String,
}

#[derive(Default, Deserialize)]
struct PageRequest {
    token: Option<String>,
    limit: Option<u64>,
}

/// The most actions one search page holds; the catalogue is smaller than this in practice.
const MAX_PAGE: usize = 1000;

/// The reason of a resource in another organisation: it is denied like an unknown entity, without
/// saying whether that organisation exists.
const OTHER_ORGANIZATION: &str = "organization not found";

pub async fn evaluation(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let (caller, organization) = organization(&http, &headers, connection.as_ref()).await?;
        let request: Evaluation = parse(body)?;
        let decision = single(&http, &caller, organization, &request).await?;
        Ok::<_, Response>(json(StatusCode::OK, &decision))
    };
    answered.await.unwrap_or_else(|refused: Response| refused)
}

pub async fn evaluations(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let (caller, organization) = organization(&http, &headers, connection.as_ref()).await?;
        let request: Evaluations = parse(body)?;
        let semantic = match request.options.evaluations_semantic.as_deref() {
            None | Some("execute_all") => Semantic::ExecuteAll,
            Some("deny_on_first_deny") => Semantic::DenyOnFirstDeny,
            Some("permit_on_first_permit") => Semantic::PermitOnFirstPermit,
            Some(_) => {
                return Err(error_response(Error::invalid(
                    "options.evaluations_semantic",
                    "must be execute_all, deny_on_first_deny or permit_on_first_permit",
                )));
            }
        };
        // Without `evaluations` the request is a single evaluation, and so is its answer.
        if request.evaluations.is_empty() {
            let decision = single(&http, &caller, organization, &request.defaults).await?;
            return Ok(json(StatusCode::OK, &decision));
        }
        if request.evaluations.len() > MAX_BATCH {
            return Err(error_response(Error::invalid(
                "evaluations",
                format!("must hold at most {MAX_BATCH} evaluations"),
            )));
        }
        let mut answers: Vec<Option<Value>> = vec![None; request.evaluations.len()];
        let mut checks = Vec::new();
        let mut positions = Vec::new();
        for (index, one) in request.evaluations.iter().enumerate() {
            let resolved = Evaluation {
                subject: one.subject.clone().or(request.defaults.subject.clone()),
                action: one.action.clone().or(request.defaults.action.clone()),
                resource: one.resource.clone().or(request.defaults.resource.clone()),
                context: one.context.clone().or(request.defaults.context.clone()),
            };
            match ask(organization, &resolved, &format!("evaluations[{index}]."))
                .map_err(error_response)?
            {
                Asked::Deny(explain) => answers[index] = Some(denied(explain)),
                Asked::Check(check) => {
                    positions.push(index);
                    checks.push(check);
                }
            }
        }
        if !checks.is_empty() {
            // Renames `checks[i]` back to the evaluation it came from.
            let renamed = |error: Error| match error {
                Error::Invalid { field, reason } => {
                    let (index, rest) = field
                        .strip_prefix("checks[")
                        .and_then(|rest| rest.split_once("]."))
                        .and_then(|(index, rest)| Some((index.parse::<usize>().ok()?, rest)))
                        .unwrap_or((usize::MAX, field.as_ref()));
                    let at = positions
                        .get(index)
                        .map(|position| format!("evaluations[{position}]."))
                        .unwrap_or_default();
                    rename(Error::invalid(rest.to_owned(), reason), &at)
                }
                other => other,
            };
            let batch = v1::CheckPermissionsRequest { checks };
            check_strings(&batch).map_err(|error| error_response(renamed(error)))?;
            // The whole batch at one revision; a short-circuit only trims what is returned.
            let decisions = authorization::decide_many(&http.state, &caller, &batch.checks)
                .await
                .map_err(|error| error_response(renamed(error)))?;
            for (position, decision) in positions.iter().zip(decisions) {
                answers[*position] = Some(decision_json(&decision));
            }
        }
        let mut evaluations = Vec::with_capacity(answers.len());
        for answer in answers.into_iter().flatten() {
            let allowed = answer["decision"] == Value::Bool(true);
            evaluations.push(answer);
            let stop = match semantic {
                Semantic::ExecuteAll => false,
                Semantic::DenyOnFirstDeny => !allowed,
                Semantic::PermitOnFirstPermit => allowed,
            };
            if stop {
                break;
            }
        }
        Ok::<_, Response>(json(
            StatusCode::OK,
            &serde_json::json!({ "evaluations": evaluations }),
        ))
    };
    answered.await.unwrap_or_else(|refused: Response| refused)
}

/// The actions (permission keys) the subject holds on the resource, in catalogue order, a page at
/// a time; `page.token` is the offset of the next page.
pub async fn search_action(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let (caller, organization) = organization(&http, &headers, connection.as_ref()).await?;
        let request: ActionSearch = parse(body)?;
        let probe = Evaluation {
            subject: request.subject,
            // Any key of the catalogue: only the subject and resource are looked at.
            action: Some(Action {
                name: String::new(),
            }),
            resource: request.resource,
            context: request.context,
        };
        let offset = match request.page.token.as_deref() {
            None | Some("") => 0,
            Some(token) => page_offset(token).map_err(error_response)?,
        };
        let limit = match request.page.limit {
            None | Some(0) => MAX_PAGE,
            Some(limit) => usize::try_from(limit).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        let held = match ask(organization, &probe, "").map_err(error_response)? {
            Asked::Deny(_) => Vec::new(),
            Asked::Check(check) => {
                let input = v1::ListEffectivePermissionsRequest {
                    organization_id: check.organization_id,
                    user_id: check.user_id,
                    entity_id: check.entity_id,
                    consistency: check.consistency,
                };
                check_strings(&input).map_err(|error| error_response(rename(error, "")))?;
                authorization::effective(&http.state, &caller, &input)
                    .await
                    .map_err(|error| error_response(rename(error, "")))?
            }
        };
        let total = held.len();
        let results: Vec<Value> = held
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|name| serde_json::json!({ "name": name }))
            .collect();
        let next = offset + results.len();
        let next_token = if next < total {
            URL_SAFE_NO_PAD.encode(format!("a1:{next}"))
        } else {
            String::new()
        };
        Ok::<_, Response>(json(
            StatusCode::OK,
            &serde_json::json!({
                "page": { "next_token": next_token, "count": results.len(), "total": total },
                "results": results,
            }),
        ))
    };
    answered.await.unwrap_or_else(|refused: Response| refused)
}

/// The users who may do the action on the resource (LookupSubjects), a page at a time.
pub async fn search_subject(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let (caller, organization) = organization(&http, &headers, connection.as_ref()).await?;
        let request: Search = parse(body)?;
        let (action, consistency) = searched(&request).map_err(error_response)?;
        match &request.subject {
            Some(subject) if subject.kind == "user" => {}
            _ => {
                return Err(error_response(Error::invalid(
                    "subject.type",
                    "must be \"user\"",
                )));
            }
        }
        let resource = request
            .resource
            .as_ref()
            .ok_or_else(|| error_response(Error::invalid("resource", "is required")))?;
        let entity_id = match resource.kind.as_str() {
            "entity" if !resource.id.is_empty() => resource.id.clone(),
            "organization" => {
                let asked =
                    OrganizationId::parse("resource.id", &resource.id).map_err(error_response)?;
                if asked != organization {
                    // Nobody of this key's organisation may act there; existence stays unsaid.
                    return Ok(search_page(Vec::new(), String::new()));
                }
                String::new()
            }
            "entity" => return Err(error_response(Error::invalid("resource.id", "is required"))),
            _ => {
                return Err(error_response(Error::invalid(
                    "resource.type",
                    "must be \"entity\" or \"organization\"",
                )));
            }
        };
        let input = v1::LookupSubjectsRequest {
            organization_id: organization.to_string(),
            permission: action,
            entity_id,
            consistency,
            page_size: page_size(&request.page),
            page_token: request.page.token.clone().unwrap_or_default(),
        };
        let found = async {
            check_strings(&input)?;
            let found = authorization::lookup_subjects(&http.state, &caller, &input).await?;
            Ok((found.user_ids, found.next_page_token))
        };
        found_page("user", found.await)
    };
    answered.await.unwrap_or_else(|refused: Response| refused)
}

/// The entities on which the subject may do the action (LookupResources), a page at a time.
pub async fn search_resource(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let (caller, organization) = organization(&http, &headers, connection.as_ref()).await?;
        let request: Search = parse(body)?;
        let (action, consistency) = searched(&request).map_err(error_response)?;
        let user_id = match &request.subject {
            Some(subject) if subject.kind == "user" => subject.id.clone(),
            _ => {
                return Err(error_response(Error::invalid(
                    "subject.type",
                    "must be \"user\"",
                )));
            }
        };
        match &request.resource {
            Some(resource) if resource.kind == "entity" => {}
            _ => {
                return Err(error_response(Error::invalid(
                    "resource.type",
                    "must be \"entity\"",
                )));
            }
        }
        let input = v1::LookupResourcesRequest {
            organization_id: organization.to_string(),
            user_id,
            permission: action,
            consistency,
            page_size: page_size(&request.page),
            page_token: request.page.token.clone().unwrap_or_default(),
        };
        let found = async {
            check_strings(&input)?;
            let found = authorization::lookup_resources(&http.state, &caller, &input).await?;
            Ok((found.entity_ids, found.next_page_token))
        };
        found_page("entity", found.await)
    };
    answered.await.unwrap_or_else(|refused: Response| refused)
}

/// A search's action name and consistency.
fn searched(request: &Search) -> Result<(String, Option<v1::Consistency>), Error> {
    let action = request
        .action
        .as_ref()
        .ok_or_else(|| Error::invalid("action", "is required"))?;
    let (_, consistency) = context(request.context.as_ref(), "")?;
    Ok((action.name.clone(), consistency))
}

/// `page.limit` as a page size; the lookups cap it (500), and 0 or none asks for their default.
fn page_size(page: &PageRequest) -> i32 {
    page.limit
        .map_or(0, |limit| i32::try_from(limit).unwrap_or(i32::MAX))
}

/// A lookup's ids as a page of search results of `kind`, or its refusal in AuthZEN's field names.
fn found_page(
    kind: &str,
    found: Result<(Vec<String>, String), Error>,
) -> Result<Response, Response> {
    let (ids, next_token) = found.map_err(|error| error_response(rename(error, "")))?;
    let results = ids
        .into_iter()
        .map(|id| serde_json::json!({ "type": kind, "id": id }))
        .collect();
    Ok(search_page(results, next_token))
}

fn search_page(results: Vec<Value>, next_token: String) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({
            "page": { "next_token": next_token, "count": results.len() },
            "results": results,
        }),
    )
}

/// One evaluation's decision, as CheckPermission gives it.
async fn single(
    http: &Http,
    caller: &Caller,
    organization: OrganizationId,
    request: &Evaluation,
) -> Result<Value, Response> {
    match ask(organization, request, "").map_err(error_response)? {
        Asked::Deny(explain) => Ok(denied(explain)),
        Asked::Check(check) => {
            let renamed = |error| error_response(rename(error, ""));
            check_strings(&check).map_err(renamed)?;
            let decision = authorization::decide(&http.state, caller, &check)
                .await
                .map_err(renamed)?;
            Ok(decision_json(&decision))
        }
    }
}

fn page_offset(token: &str) -> Result<usize, Error> {
    let malformed = || Error::invalid("page.token", "not a token this server issued");
    let text = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(malformed)?;
    text.strip_prefix("a1:")
        .and_then(|offset| offset.parse().ok())
        .ok_or_else(malformed)
}

#[derive(Clone, Copy)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// The caller and its organisation: only an organisation's API key may ask.
async fn organization(
    http: &Http,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Result<(Caller, OrganizationId), Response> {
    let caller = caller(&http.state, headers, connection)
        .await
        .map_err(error_response)?;
    match caller {
        Caller::ApiKey { organization } => Ok((caller, organization)),
        _ => Err(error_response(Error::PermissionDenied(
            "the AuthZEN API needs an organization's API key".into(),
        ))),
    }
}

/// What an evaluation asks: a CheckPermission, or a deny decided without one (a resource of
/// another organisation); the flag is `context.explain`.
enum Asked {
    Check(v1::CheckPermissionRequest),
    Deny(bool),
}

/// The CheckPermission an evaluation stands for; fields are named as the request names them, after
/// `at` (`evaluations[2].`).
fn ask(organization: OrganizationId, one: &Evaluation, at: &str) -> Result<Asked, Error> {
    let required = |name: &str| Error::invalid(format!("{at}{name}"), "is required");
    let subject = one.subject.as_ref().ok_or_else(|| required("subject"))?;
    let action = one.action.as_ref().ok_or_else(|| required("action"))?;
    let resource = one.resource.as_ref().ok_or_else(|| required("resource"))?;
    if subject.kind != "user" {
        return Err(Error::invalid(
            format!("{at}subject.type"),
            "must be \"user\"",
        ));
    }
    let (explain, consistency) = context(one.context.as_ref(), at)?;
    let entity_id = match resource.kind.as_str() {
        "entity" => resource.id.clone(),
        "organization" => {
            let asked = OrganizationId::parse("resource.id", &resource.id)
                .map_err(|error| rename(error, at))?;
            if asked != organization {
                return Ok(Asked::Deny(explain));
            }
            String::new()
        }
        _ => {
            return Err(Error::invalid(
                format!("{at}resource.type"),
                "must be \"entity\" or \"organization\"",
            ));
        }
    };
    if resource.kind == "entity" && entity_id.is_empty() {
        return Err(Error::invalid(format!("{at}resource.id"), "is required"));
    }
    Ok(Asked::Check(v1::CheckPermissionRequest {
        organization_id: organization.to_string(),
        user_id: subject.id.clone(),
        permission: action.name.clone(),
        entity_id,
        explain,
        consistency,
    }))
}

/// `context.explain` and `context.consistency`; every other key is the caller's own.
fn context(context: Option<&Value>, at: &str) -> Result<(bool, Option<v1::Consistency>), Error> {
    let Some(context) = context.filter(|context| !context.is_null()) else {
        return Ok((false, None));
    };
    let Value::Object(context) = context else {
        return Err(Error::invalid(format!("{at}context"), "must be an object"));
    };
    let explain = match context.get("explain") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(explain)) => *explain,
        Some(_) => {
            return Err(Error::invalid(
                format!("{at}context.explain"),
                "must be true or false",
            ));
        }
    };
    let requirement = match context.get("consistency") {
        None | Some(Value::Null) => None,
        Some(Value::String(named)) if named == "minimize_latency" => {
            Some(Requirement::MinimizeLatency(true))
        }
        Some(Value::String(named)) if named == "fully_consistent" => {
            Some(Requirement::FullyConsistent(true))
        }
        Some(Value::Object(object)) if object.len() == 1 => match object.get("at_least_as_fresh") {
            Some(Value::String(token)) => Some(Requirement::AtLeastAsFresh(token.clone())),
            _ => None,
        }
        .map(Some)
        .ok_or_else(|| consistency_error(at))?,
        Some(_) => return Err(consistency_error(at)),
    };
    Ok((
        explain,
        requirement.map(|requirement| v1::Consistency {
            requirement: Some(requirement),
        }),
    ))
}

fn consistency_error(at: &str) -> Error {
    Error::invalid(
        format!("{at}context.consistency"),
        "must be \"minimize_latency\", \"fully_consistent\" or {\"at_least_as_fresh\": <token>}",
    )
}

/// CheckPermission's field names as this API names them.
fn rename(error: Error, at: &str) -> Error {
    match error {
        Error::Invalid { field, reason } => {
            let name = match field.as_ref() {
                "user_id" => "subject.id".to_owned(),
                "permission" => "action.name".to_owned(),
                "entity_id" => "resource.id".to_owned(),
                "page_token" => "page.token".to_owned(),
                "page_size" => "page.limit".to_owned(),
                other if other.starts_with("consistency") => format!("context.{other}"),
                other => other.to_owned(),
            };
            Error::invalid(format!("{at}{name}"), reason)
        }
        other => other,
    }
}

fn decision_json(decision: &v1::CheckPermissionResponse) -> Value {
    let mut answer = serde_json::json!({ "decision": decision.allowed });
    if !decision.reason.is_empty() {
        answer["context"] = serde_json::json!({ "reason": decision.reason });
    }
    answer
}

fn denied(explain: bool) -> Value {
    decision_json(&v1::CheckPermissionResponse {
        allowed: false,
        reason: if explain {
            OTHER_ORGANIZATION.to_owned()
        } else {
            String::new()
        },
    })
}
