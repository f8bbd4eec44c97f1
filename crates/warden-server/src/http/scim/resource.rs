//! What every SCIM resource answers alike (RFC 7644 §3): list and `.search`, read with
//! `attributes`, create, PUT, PATCH (applied to the resource's JSON, then written as a PUT would
//! be) and DELETE, each behind the token, the writes behind `If-Match`. A kind (`users::Users`,
//! `groups::Groups`) says how its resources are found, shown, parsed and written.
use axum::{
    body::Bytes,
    extract::{Path, Query, State, rejection::BytesRejection, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use warden_core::Error;

use super::{
    ListQuery, Scim, Selection, authenticate, ensure_version, error_response, list_response,
    parse_resource, patched, refusal, resource, search_query, select,
};
use crate::http::{Connection, Http};

#[async_trait::async_trait]
pub trait Kind: Send + Sync + 'static {
    /// The resource as Warden keeps it.
    type Item: Send + Sync;
    /// What a body asks the resource to be.
    type Desired: Send;
    /// `Users` or `Groups`: the endpoint, as in `Location`.
    const ENDPOINT: &'static str;
    const SCHEMA: &'static str;
    /// The attributes of the schema a body may carry.
    const KNOWN: &'static [&'static str];

    fn id(item: &Self::Item) -> String;
    fn parse(value: &Value) -> Result<Self::Desired, Error>;
    /// Adjusts what a PATCH made of `current` before it is parsed.
    fn after_patch(_current: &Value, _wanted: &mut Value) {}
    /// The resource of the token's organisation; anything else is 404.
    async fn find(scim: &Scim, id: &str) -> Result<Self::Item, Error>;
    /// The SCIM representation, with its `meta.version`.
    async fn shown(scim: &Scim, item: &Self::Item) -> Result<Value, Error>;
    /// Every resource of this kind in the token's organisation, as `shown`.
    async fn every(scim: &Scim) -> Result<Vec<Value>, Error>;
    async fn create(scim: &Scim, desired: Self::Desired) -> Result<Self::Item, Error>;
    /// Writes what differs between `item` and `desired`.
    async fn converge(
        scim: &Scim,
        item: Self::Item,
        desired: Self::Desired,
    ) -> Result<Self::Item, Error>;
    async fn delete(scim: &Scim, item: Self::Item) -> Result<(), Error>;
}

fn query_refused(rejection: QueryRejection) -> Response {
    refusal(
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
        &rejection.body_text(),
    )
}

/// The resource `id` names and how it is shown now, once `If-Match` (if any) names that version.
async fn current<K: Kind>(
    scim: &Scim,
    id: &str,
    headers: &HeaderMap,
) -> Result<(K::Item, Value), Response> {
    let item = K::find(scim, id).await.map_err(error_response)?;
    let value = K::shown(scim, &item).await.map_err(error_response)?;
    ensure_version(headers, &value)?;
    Ok((item, value))
}

/// `item` written as `desired` asks, answered with what it became.
async fn written<K: Kind>(
    scim: &Scim,
    item: K::Item,
    wanted: &Value,
) -> Result<Response, Response> {
    let desired = K::parse(wanted).map_err(error_response)?;
    let item = K::converge(scim, item, desired)
        .await
        .map_err(error_response)?;
    let value = K::shown(scim, &item).await.map_err(error_response)?;
    Ok(resource(StatusCode::OK, &value))
}

pub async fn list<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let Query(query) = query.map_err(query_refused)?;
        list_response(K::every(&scim).await.map_err(error_response)?, &query)
    };
    answered.await.unwrap_or_else(|refused| refused)
}

/// POST `.search`: the list's query as a JSON body.
pub async fn search<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let query = search_query(body)?;
        list_response(K::every(&scim).await.map_err(error_response)?, &query)
    };
    answered.await.unwrap_or_else(|refused| refused)
}

pub async fn read<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    Path(id): Path<String>,
    selection: Result<Query<Selection>, QueryRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let Query(selection) = selection.map_err(query_refused)?;
        let item = K::find(&scim, &id).await.map_err(error_response)?;
        let value = K::shown(&scim, &item).await.map_err(error_response)?;
        let (attributes, excluded) = (
            selection.attributes.as_deref(),
            selection.excluded_attributes.as_deref(),
        );
        let mut response = resource(StatusCode::OK, &value);
        *response.body_mut() = select(value, attributes, excluded).to_string().into();
        Ok::<_, Response>(response)
    };
    answered.await.unwrap_or_else(|refused| refused)
}

pub async fn create<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let value = parse_resource(body, K::SCHEMA, K::KNOWN)?;
        let desired = K::parse(&value).map_err(error_response)?;
        let item = K::create(&scim, desired).await.map_err(error_response)?;
        let value = K::shown(&scim, &item).await.map_err(error_response)?;
        let mut response = resource(StatusCode::CREATED, &value);
        let location = format!("{}/{}/{}", scim.base, K::ENDPOINT, K::id(&item));
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok::<_, Response>(response)
    };
    answered.await.unwrap_or_else(|refused| refused)
}

pub async fn replace<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let (item, _) = current::<K>(&scim, &id, &headers).await?;
        let value = parse_resource(body, K::SCHEMA, K::KNOWN)?;
        written::<K>(&scim, item, &value).await
    };
    answered.await.unwrap_or_else(|refused| refused)
}

pub async fn patch<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let (item, shown) = current::<K>(&scim, &id, &headers).await?;
        let mut wanted = patched(body, &shown)?;
        K::after_patch(&shown, &mut wanted);
        written::<K>(&scim, item, &wanted).await
    };
    answered.await.unwrap_or_else(|refused| refused)
}

pub async fn delete<K: Kind>(
    State(http): State<Http>,
    headers: HeaderMap,
    connection: Option<Connection>,
    Path(id): Path<String>,
) -> Response {
    let answered = async {
        let scim = authenticate(&http, &headers, connection.as_ref()).await?;
        let (item, _) = current::<K>(&scim, &id, &headers).await?;
        K::delete(&scim, item).await.map_err(error_response)?;
        Ok::<_, Response>(StatusCode::NO_CONTENT.into_response())
    };
    answered.await.unwrap_or_else(|refused| refused)
}
