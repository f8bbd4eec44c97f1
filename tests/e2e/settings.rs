//! UpdateOrganizationSettings: which fields a request applies, and writes racing ConfigureSso.
use tokio::task::JoinSet;
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestOrg, TestServer, update_mask};

const IDP_JWKS: &str = include_str!("../fixtures/idp_jwks.json");

fn sso_config(org: &TestOrg, enabled: bool) -> v1::ConfigureSsoRequest {
    v1::ConfigureSsoRequest {
        organization_id: org.id.clone(),
        enabled,
        issuer: "https://idp.example.com".into(),
        client_id: "warden-dashboard".into(),
        jwks_json: IDP_JWKS.into(),
        default_role_id: "analyst".into(),
        ..Default::default()
    }
}

async fn settings(server: &TestServer, org: &TestOrg) -> v1::OrganizationSettings {
    let reply = server
        .organizations(&org.owner_token)
        .get_organization(org.get_organization())
        .await
        .unwrap();
    reply.into_inner().organization.unwrap().settings.unwrap()
}

#[tokio::test]
async fn a_populated_field_is_applied_without_any_flag() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let totp_only = v1::UpdateOrganizationSettingsRequest {
        allowed_second_factors: vec![v1::SecondFactorMethod::Totp as i32],
        ..Default::default()
    };
    let replied = server.update_settings(&org, totp_only).await;
    let totp = [v1::SecondFactorMethod::Totp as i32];
    assert_eq!(replied.allowed_second_factors, totp);
    assert_eq!(settings(&server, &org).await.allowed_second_factors, totp);
}

#[tokio::test]
async fn a_field_named_in_the_mask_is_applied_even_when_empty_and_others_are_left_alone() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let none_allowed = v1::UpdateOrganizationSettingsRequest {
        invitation_ttl_seconds: Some(60),
        update_mask: update_mask(&["allowed_second_factors"]),
        ..Default::default()
    };
    let replied = server.update_settings(&org, none_allowed).await;
    assert!(
        replied.allowed_second_factors.is_empty(),
        "named, so applied empty"
    );
    assert_eq!(
        replied.invitation_ttl_seconds,
        7 * 24 * 3600,
        "set but not named: left alone"
    );
    let unset_ttl = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        update_mask: update_mask(&["invitation_ttl_seconds"]),
        ..Default::default()
    };
    let error = server
        .organizations(&org.owner_token)
        .update_organization_settings(unset_ttl)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    let unknown = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        update_mask: update_mask(&["sso_enabled"]),
        ..Default::default()
    };
    let error = server
        .organizations(&org.owner_token)
        .update_organization_settings(unknown)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "update_mask: unknown field \"sso_enabled\""
        )
    );
    let shown = settings(&server, &org).await;
    assert!(shown.allowed_second_factors.is_empty() && !shown.sso_enabled);
}

#[tokio::test]
async fn the_deprecated_flag_still_applies_an_empty_list() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    #[allow(deprecated, reason = "the old flag must keep working")]
    let flagged = v1::UpdateOrganizationSettingsRequest {
        update_allowed_second_factors: true,
        ..Default::default()
    };
    let replied = server.update_settings(&org, flagged).await;
    assert!(replied.allowed_second_factors.is_empty());
    let untouched = v1::UpdateOrganizationSettingsRequest {
        require_second_factor: Some(false),
        ..Default::default()
    };
    let replied = server.update_settings(&org, untouched).await;
    assert!(
        replied.allowed_second_factors.is_empty(),
        "an empty list without flag or mask changes nothing"
    );
}

#[tokio::test]
async fn settings_updates_racing_sso_configuration_never_write_back_a_stale_sso_flag() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    for round in 0..8_i64 {
        let enabled = round % 2 == 0;
        let mut calls = JoinSet::new();
        for position in 0..6_i64 {
            let mut organizations = server.organizations(&org.owner_token);
            if position == 2 {
                let request = sso_config(&org, enabled);
                calls.spawn(async move {
                    organizations.configure_sso(request).await.unwrap();
                });
            } else {
                let request = v1::UpdateOrganizationSettingsRequest {
                    organization_id: org.id.clone(),
                    invitation_ttl_seconds: Some(3600 + round * 10 + position),
                    ..Default::default()
                };
                calls.spawn(async move {
                    organizations
                        .update_organization_settings(request)
                        .await
                        .unwrap();
                });
            }
        }
        calls.join_all().await;
        assert_eq!(
            settings(&server, &org).await.sso_enabled,
            enabled,
            "round {round}: a settings write reverted ConfigureSso"
        );
    }
}
