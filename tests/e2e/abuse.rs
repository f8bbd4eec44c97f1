//! What junk costs: an address that keeps presenting bearer tokens that authenticate nothing is
//! refused for a while, before its tokens are looked at.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, TestDatabase, TestServer};

#[tokio::test]
async fn an_address_guessing_tokens_is_refused_after_its_failure_budget() {
    let db = TestDatabase::fresh().await;
    let server = TestServer::start_with(db, |config| {
        config.failed_authentication_per_minute = 5;
    })
    .await;
    let org = server.create_organization("Acme").await;
    let get = || v1::GetOrganizationRequest {
        organization_id: org.id.clone(),
    };
    let guesses = [
        "a-guess-at-the-operator-token-000000".to_owned(),
        "wk_0011223344556677.junk".to_owned(),
        "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vcGUifQ.e30.c2ln".to_owned(),
    ];
    for attempt in 0..5 {
        let guess = &guesses[attempt % guesses.len()];
        let error = server
            .organizations(guess)
            .get_organization(get())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "guess {attempt}");
    }
    // The 6th failure exhausts the budget; from then on even the right token waits.
    let error = server
        .organizations("wk_8899aabbccddeeff.junk")
        .get_organization(get())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = server
        .organizations(OPERATOR_TOKEN)
        .get_organization(get())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.metadata().get("retry-after").is_some());
}
