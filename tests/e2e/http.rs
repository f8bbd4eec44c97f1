//! The HTTP listener: OpenID discovery and the JWKS verify Warden's tokens with a stock JWT library,
//! and the AuthZEN Authorization API answers what CheckPermission answers.
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, TestOrg, TestServer, grant};

/// POSTs `body` (a JSON value or raw text) with `token` as the bearer, if any.
async fn post(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = Client::new()
        .post(format!("{}{path}", server.http_url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("http request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text:?}"));
    (status, headers, value)
}

async fn evaluate(server: &TestServer, org: &TestOrg, body: &Value) -> Value {
    let (status, _, answer) = post(
        server,
        "/access/v1/evaluation",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    Client::new()
        .get(format!("{}{path}", server.http_url))
        .send()
        .await
        .expect("http request")
}

fn evaluation(user: &str, permission: &str, kind: &str, id: &str) -> Value {
    json!({
        "subject": { "type": "user", "id": user },
        "action": { "name": permission },
        "resource": { "type": kind, "id": id },
        "context": { "explain": true },
    })
}

/// A stock verifier: the key comes from `jwks_uri`, found through discovery, and nothing else.
async fn verify_from_discovery(server: &TestServer, token: &str) -> Result<Value, String> {
    let discovery: Value = get(server, "/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    let set: jsonwebtoken::jwk::JwkSet = Client::new()
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).ok_or(format!("kid {kid} not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|error| error.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[discovery["issuer"].as_str().unwrap()]);
    validation.set_audience(&["warden"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|error| error.to_string())
}

#[tokio::test]
async fn http_jwks_from_discovery_verifies_tokens_before_and_after_rotation() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let discovery = get(&server, "/.well-known/openid-configuration").await;
    assert_eq!(discovery.status(), StatusCode::OK);
    let discovery: Value = discovery.json().await.unwrap();
    assert_eq!(discovery["issuer"], "warden");
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", server.http_url)
    );

    let jwks = get(&server, "/.well-known/jwks.json").await;
    assert_eq!(jwks.headers()["content-type"], "application/jwk-set+json");
    let cache = jwks.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.contains("max-age=60"), "{cache}");
    let before: Value = jwks.json().await.unwrap();
    // The same set GetJwks serves, as JSON rather than a string inside a message.
    let grpc = server
        .auth(OPERATOR_TOKEN)
        .get_jwks(v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        before,
        serde_json::from_str::<Value>(&grpc.keys_json).unwrap()
    );

    let claims = verify_from_discovery(&server, &org.owner_token)
        .await
        .unwrap();
    assert_eq!(claims["sub"], org.owner_id.as_str());

    // Keys are ordered by creation time: the manual clock must move for the new one to be newest.
    server.advance(std::time::Duration::from_secs(1));
    let rotated = server
        .auth(OPERATOR_TOKEN)
        .rotate_signing_key(v1::RotateSigningKeyRequest {})
        .await
        .unwrap()
        .into_inner()
        .key_id;
    let fresh = server
        .sign_in(&org.owner_email, warden_tests::PASSWORD)
        .await
        .access_token;
    let kid = jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap();
    assert_eq!(kid, rotated, "the new key signs at once");
    // Both verify from the URL alone: the old key stays published while its tokens live.
    verify_from_discovery(&server, &fresh).await.unwrap();
    verify_from_discovery(&server, &org.owner_token)
        .await
        .unwrap();
    let after: Value = get(&server, "/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["keys"].as_array().unwrap().len(), 2);

    // Once the old key's last token has expired (15 minutes and the leeway), it leaves the set.
    server.advance(std::time::Duration::from_secs(900 + 6));
    let later: Value = get(&server, "/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = later["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [rotated.as_str()]);
}

#[tokio::test]
async fn http_authzen_metadata_lists_the_endpoints_that_exist() {
    let server = TestServer::start().await;
    let metadata: Value = get(&server, "/.well-known/authzen-configuration")
        .await
        .json()
        .await
        .unwrap();
    let base = &server.http_url;
    assert_eq!(
        metadata,
        json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
            "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
            "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
            "search_action_endpoint": format!("{base}/access/v1/search/action"),
        })
    );
    for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        let status = get(&server, path).await.status();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let missing = get(&server, "/access/v1/nothing").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn http_authzen_decisions_equal_check_permission() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let branch = server.create_entity(&org, "Acme GmbH", "").await;
    let sibling = server.create_entity(&org, "Acme SARL", "").await;
    let foreign = server.create_entity(&other, "Globex Ltd", "").await;
    let analyst = server
        .member(
            &org,
            "analyst@acme.test",
            vec![grant("analyst", &[&branch])],
        )
        .await;
    let users = [
        org.owner_id.as_str(),
        analyst.id.as_str(),
        other.owner_id.as_str(),
    ];
    let permissions = ["payments.read", "payments.refund", "account.write"];
    let entities = ["", branch.as_str(), sibling.as_str(), foreign.as_str()];
    for user in users {
        for permission in permissions {
            for entity in entities {
                let expected = server.decide(&org, user, permission, entity).await;
                let body = match entity {
                    "" => evaluation(user, permission, "organization", &org.id),
                    id => evaluation(user, permission, "entity", id),
                };
                let answer = evaluate(&server, &org, &body).await;
                assert_eq!(
                    answer,
                    json!({ "decision": expected.allowed, "context": { "reason": expected.reason } }),
                    "{user} {permission} {entity:?}"
                );
            }
        }
    }
    // Without `explain` there is no context; consistency options change nothing here.
    for consistency in [
        json!("minimize_latency"),
        json!("fully_consistent"),
        Value::Null,
    ] {
        let mut body = evaluation(&analyst.id, "payments.read", "entity", &branch);
        body["context"] = json!({ "consistency": consistency });
        assert_eq!(
            evaluate(&server, &org, &body).await,
            json!({ "decision": true })
        );
    }
    // A resource of another organisation is denied like an unknown one, whether it exists or not.
    let mut answers = Vec::new();
    for id in [other.id.clone(), uuid::Uuid::new_v4().to_string()] {
        let body = evaluation(&org.owner_id, "payments.read", "organization", &id);
        answers.push(evaluate(&server, &org, &body).await);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0]["decision"], false);
    // Another organisation's key asks in its own organisation, where this user is unknown: the
    // answer does not tell a user of another organisation from no user at all.
    let stranger = uuid::Uuid::new_v4().to_string();
    let mut answers = Vec::new();
    for user in [org.owner_id.as_str(), stranger.as_str()] {
        let body = evaluation(user, "payments.read", "organization", &other.id);
        answers.push(evaluate(&server, &other, &body).await);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0],
        json!({ "decision": false, "context": { "reason": "user not found in the organization" } })
    );
}

#[tokio::test]
async fn http_authzen_at_least_as_fresh_sees_the_write() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let created = server
        .organizations(&org.owner_token)
        .create_entity(org.create_entity("Acme GmbH", ""))
        .await
        .unwrap()
        .into_inner();
    let entity = created.entity.unwrap().id;
    let mut body = evaluation(&org.owner_id, "payments.read", "entity", &entity);
    body["context"] = json!({
        "explain": true,
        "consistency": { "at_least_as_fresh": created.consistency_token },
    });
    let answer = evaluate(&server, &org, &body).await;
    assert_eq!(answer["decision"], true, "{answer}");
    body["context"]["consistency"]["at_least_as_fresh"] = json!("not-a-token");
    let (status, _, refused) = post(
        &server,
        "/access/v1/evaluation",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused["error"]["field"],
        "context.consistency.at_least_as_fresh"
    );
}

#[tokio::test]
async fn http_authzen_refusals_are_json_with_a_reason() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let good = evaluation(&org.owner_id, "payments.read", "organization", &org.id).to_string();
    let path = "/access/v1/evaluation";

    let (status, headers, body) = post(&server, path, None, good.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, _, _) = post(&server, path, Some("wk_nope.nope"), good.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for token in [OPERATOR_TOKEN, org.owner_token.as_str()] {
        let (status, _, body) = post(&server, path, Some(token), good.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "permission_denied");
    }

    let key = Some(org.api_key.as_str());
    let cases = [
        ("{not json", None),
        ("[]", None),
        (r#"{"action": {"name": "payments.read"}}"#, Some("subject")),
        (
            &evaluation("not-a-uuid", "payments.read", "organization", &org.id).to_string(),
            Some("subject.id"),
        ),
        (
            &evaluation(&org.owner_id, "payments.teleport", "organization", &org.id).to_string(),
            Some("action.name"),
        ),
        (
            &evaluation(&org.owner_id, "payments.read", "entity", "x").to_string(),
            Some("resource.id"),
        ),
        (
            &evaluation(&org.owner_id, "payments.read", "account", "123").to_string(),
            Some("resource.type"),
        ),
        (
            &evaluation(&org.owner_id, "payments.read", "organization", "acme").to_string(),
            Some("resource.id"),
        ),
        (
            &json!({
                "subject": { "type": "group", "id": org.owner_id },
                "action": { "name": "payments.read" },
                "resource": { "type": "organization", "id": org.id },
            })
            .to_string(),
            Some("subject.type"),
        ),
        (
            &json!({
                "subject": { "type": "user", "id": org.owner_id },
                "action": { "name": "payments.read" },
                "resource": { "type": "organization", "id": org.id },
                "context": { "consistency": "eventually" },
            })
            .to_string(),
            Some("context.consistency"),
        ),
    ];
    for (body, field) in cases {
        let (status, _, answer) = post(&server, path, key, body.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_argument", "{body}");
        assert!(
            !answer["error"]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
    }

    let oversized = format!(r#"{{"context": {{"pad": "{}"}}}}"#, "x".repeat(2 << 20));
    let (status, _, answer) = post(&server, path, key, oversized).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "payload_too_large");

    // The caller's request id comes back (AuthZEN, Request Identification).
    let response = Client::new()
        .post(format!("{}{path}", server.http_url))
        .bearer_auth(&org.api_key)
        .header("x-request-id", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-request-id"],
        "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    );
}

/// The specification's boxcarring examples, verbatim but for the identifiers: its
/// `alice@example.com`, `document` and `read`/`can_read` become a user, `entity` and a permission.
#[tokio::test]
async fn http_authzen_evaluations_follow_the_specification_examples() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let one = server.create_entity(&org, "One", "").await;
    let two = server.create_entity(&org, "Two", "").await;
    let three = server.create_entity(&org, "Three", "").await;
    let alice = server
        .member(
            &org,
            "alice@example.com",
            vec![grant("analyst", &[&one, &three])],
        )
        .await;
    let replay = async |semantic: &str| {
        let body = r#"{
  "subject": {
    "type": "user",
    "id": "alice@example.com"
  },
  "action": {
    "name": "read"
  },
  "options": {
    "evaluations_semantic": "SEMANTIC"
  },
  "evaluations": [
    {
      "resource": {
        "type": "document",
        "id": "1"
      }
    },
    {
      "resource": {
        "type": "document",
        "id": "2"
      }
    },
    {
      "resource": {
        "type": "document",
        "id": "3"
      }
    }
  ]
}"#
        .replace("SEMANTIC", semantic)
        .replace("alice@example.com", &alice.id)
        .replace(r#""read""#, r#""payments.read""#)
        .replace("document", "entity")
        .replace(r#""1""#, &format!("{one:?}"))
        .replace(r#""2""#, &format!("{two:?}"))
        .replace(r#""3""#, &format!("{three:?}"));
        let (status, _, answer) =
            post(&server, "/access/v1/evaluations", Some(&org.api_key), body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    };
    // The specification's responses for documents 1 and 3 allowed and 2 denied.
    assert_eq!(
        replay("execute_all").await,
        json!({ "evaluations": [{ "decision": true }, { "decision": false }, { "decision": true }] })
    );
    assert_eq!(
        replay("deny_on_first_deny").await,
        json!({ "evaluations": [{ "decision": true }, { "decision": false }] })
    );
    assert_eq!(
        replay("permit_on_first_permit").await,
        json!({ "evaluations": [{ "decision": true }] })
    );

    // Defaults apply to each evaluation, and an evaluation's own key overrides them; the
    // decisions are CheckPermissions' for the same checks.
    let body = json!({
        "subject": { "type": "user", "id": alice.id },
        "context": { "explain": true },
        "action": { "name": "payments.read" },
        "evaluations": [
            { "resource": { "type": "entity", "id": one } },
            { "resource": { "type": "entity", "id": two } },
            { "action": { "name": "payments.refund" }, "resource": { "type": "entity", "id": three } },
            { "resource": { "type": "organization", "id": org.id }, "context": {} },
        ],
    });
    let (_, _, answer) = post(
        &server,
        "/access/v1/evaluations",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    let checks = vec![
        org.check(&alice.id, "payments.read", &one),
        org.check(&alice.id, "payments.read", &two),
        org.check(&alice.id, "payments.refund", &three),
        v1::CheckPermissionRequest {
            explain: false,
            ..org.check(&alice.id, "payments.read", "")
        },
    ];
    let expected = server
        .authorization(&org.api_key)
        .check_permissions(v1::CheckPermissionsRequest { checks })
        .await
        .unwrap()
        .into_inner()
        .results;
    let expected: Vec<Value> = expected
        .into_iter()
        .map(|result| match result.reason.as_str() {
            "" => json!({ "decision": result.allowed }),
            reason => json!({ "decision": result.allowed, "context": { "reason": reason } }),
        })
        .collect();
    assert_eq!(answer, json!({ "evaluations": expected }));

    // Without `evaluations`, the request is one evaluation and so is the answer.
    let single = evaluation(&alice.id, "payments.read", "entity", &one).to_string();
    let (_, _, answer) = post(
        &server,
        "/access/v1/evaluations",
        Some(&org.api_key),
        single,
    )
    .await;
    assert_eq!(answer["decision"], true);

    // Errors name the evaluation; a missing key without a default is refused.
    let body = json!({
        "subject": { "type": "user", "id": alice.id },
        "action": { "name": "payments.read" },
        "evaluations": [
            { "resource": { "type": "entity", "id": one } },
            { "resource": { "type": "entity", "id": "nope" } },
        ],
    });
    let (status, _, answer) = post(
        &server,
        "/access/v1/evaluations",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "evaluations[1].resource.id");
    let body = json!({ "evaluations": [{ "resource": { "type": "entity", "id": one } }] });
    let (status, _, answer) = post(
        &server,
        "/access/v1/evaluations",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "evaluations[0].subject");
    let body = json!({ "evaluations": [], "options": { "evaluations_semantic": "some" } });
    let (status, _, answer) = post(
        &server,
        "/access/v1/evaluations",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "options.evaluations_semantic");
}

#[tokio::test]
async fn http_authzen_action_search_pages_through_effective_permissions() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let entity = server.create_entity(&org, "Acme GmbH", "").await;
    let expected = server
        .authorization(&org.api_key)
        .list_effective_permissions(v1::ListEffectivePermissionsRequest {
            organization_id: org.id.clone(),
            user_id: org.owner_id.clone(),
            entity_id: entity.clone(),
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner()
        .permissions;
    assert!(expected.len() > 5);
    let mut found = Vec::new();
    let mut token = String::new();
    loop {
        let body = json!({
            "subject": { "type": "user", "id": org.owner_id },
            "resource": { "type": "entity", "id": entity },
            "page": { "limit": 5, "token": token },
        });
        let (status, _, answer) = post(
            &server,
            "/access/v1/search/action",
            Some(&org.api_key),
            body.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let results = answer["results"].as_array().unwrap();
        assert!(results.len() <= 5);
        assert_eq!(answer["page"]["count"], results.len());
        assert_eq!(answer["page"]["total"], expected.len());
        found.extend(
            results
                .iter()
                .map(|action| action["name"].as_str().unwrap().to_owned()),
        );
        token = answer["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(found, expected);

    // Another organisation's key learns nothing about this user.
    let body = json!({
        "subject": { "type": "user", "id": org.owner_id },
        "resource": { "type": "organization", "id": other.id },
    });
    let (status, _, answer) = post(
        &server,
        "/access/v1/search/action",
        Some(&other.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"], json!([]));
    let body = json!({
        "subject": { "type": "user", "id": org.owner_id },
        "resource": { "type": "organization", "id": org.id },
        "page": { "token": "garbage" },
    });
    let (status, _, answer) = post(
        &server,
        "/access/v1/search/action",
        Some(&org.api_key),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "page.token");
}

/// Every page of a search, followed through `page.next_token`, and the ids found.
async fn search_all(server: &TestServer, path: &str, key: &str, body: Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut token = String::new();
    loop {
        let mut body = body.clone();
        body["page"] = json!({ "limit": 1, "token": token });
        let (status, _, answer) = post(server, path, Some(key), body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let results = answer["results"].as_array().unwrap();
        assert_eq!(answer["page"]["count"], results.len());
        found.extend(
            results
                .iter()
                .map(|result| result["id"].as_str().unwrap().to_owned()),
        );
        token = answer["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn http_authzen_subject_and_resource_searches_answer_as_checks_do() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let refunder = server
        .create_role(&org, "Refunder", &["payments.read", "payments.refund"])
        .await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant(&refunder, &[&gmbh])])
        .await;
    let bea = server
        .member(&org, "bea@example.com", vec![grant(&refunder, &[])])
        .await;
    let checks = server.authorization(&org.api_key);

    // Who may refund on each entity: exactly the users CheckPermission allows.
    for entity in [&gmbh, &ltd] {
        let body = json!({
            "subject": { "type": "user" },
            "action": { "name": "payments.refund" },
            "resource": { "type": "entity", "id": entity },
        });
        let found = search_all(&server, "/access/v1/search/subject", &org.api_key, body).await;
        let mut expected = Vec::new();
        for user in [&org.owner_id, &alan.id, &bea.id] {
            let allowed = checks
                .clone()
                .check_permission(v1::CheckPermissionRequest {
                    organization_id: org.id.clone(),
                    user_id: user.to_string(),
                    permission: "payments.refund".into(),
                    entity_id: entity.to_string(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .allowed;
            if allowed {
                expected.push(user.to_string());
            }
        }
        expected.sort();
        assert_eq!(found, expected, "entity {entity}");
        assert!(found.contains(&bea.id));
    }

    // Where alan may refund: GmbH only; bea everywhere.
    let body = |user: &str| {
        json!({
            "subject": { "type": "user", "id": user },
            "action": { "name": "payments.refund" },
            "resource": { "type": "entity" },
        })
    };
    let alan_may = search_all(
        &server,
        "/access/v1/search/resource",
        &org.api_key,
        body(&alan.id),
    )
    .await;
    assert_eq!(alan_may, std::slice::from_ref(&gmbh));
    let mut both = vec![gmbh.clone(), ltd.clone()];
    both.sort();
    let bea_may = search_all(
        &server,
        "/access/v1/search/resource",
        &org.api_key,
        body(&bea.id),
    )
    .await;
    assert_eq!(bea_may, both);

    // Another organisation's key learns nothing; malformed input names its field.
    let foreign = json!({
        "subject": { "type": "user" },
        "action": { "name": "payments.refund" },
        "resource": { "type": "organization", "id": org.id },
    });
    let found = search_all(
        &server,
        "/access/v1/search/subject",
        &other.api_key,
        foreign,
    )
    .await;
    assert!(found.is_empty());
    let foreign_user = search_all(
        &server,
        "/access/v1/search/resource",
        &other.api_key,
        body(&bea.id),
    )
    .await;
    assert!(foreign_user.is_empty());
    for (path, body, field) in [
        (
            "/access/v1/search/subject",
            json!({ "subject": { "type": "user" }, "action": { "name": "no.such" },
                    "resource": { "type": "entity", "id": gmbh } }),
            "action.name",
        ),
        (
            "/access/v1/search/subject",
            json!({ "subject": { "type": "group" }, "action": { "name": "payments.read" },
                    "resource": { "type": "entity", "id": gmbh } }),
            "subject.type",
        ),
        (
            "/access/v1/search/resource",
            json!({ "subject": { "type": "user", "id": "not-a-uuid" },
                    "action": { "name": "payments.read" }, "resource": { "type": "entity" } }),
            "subject.id",
        ),
        (
            "/access/v1/search/resource",
            json!({ "subject": { "type": "user", "id": bea.id },
                    "action": { "name": "payments.read" }, "resource": { "type": "entity" },
                    "page": { "token": "garbage" } }),
            "page.token",
        ),
    ] {
        let (status, _, answer) = post(&server, path, Some(&org.api_key), body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {answer}");
        assert_eq!(answer["error"]["field"], field, "{path} {answer}");
    }
}
