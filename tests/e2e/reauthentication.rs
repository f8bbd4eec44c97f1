//! Recent authentication (SPEC §4): enrolling or removing a second factor needs a password or factor
//! proved within the last 10 minutes; the request's `password` proves it again.
use std::time::Duration;

use tonic::Code;
use warden_proto::v1;
use warden_tests::{PASSWORD, TestServer};

fn enroll_totp(password: &str) -> v1::EnrollSecondFactorRequest {
    v1::EnrollSecondFactorRequest {
        method: v1::SecondFactorMethod::Totp as i32,
        password: password.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn enrolling_or_removing_a_factor_eleven_minutes_after_sign_in_needs_the_password_again() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut mine = server.auth(&org.owner_token);
    let factor = mine
        .enroll_second_factor(enroll_totp(""))
        .await
        .expect("just signed in")
        .into_inner()
        .factor
        .unwrap();
    server.advance(Duration::from_secs(11 * 60));
    let error = mine
        .enroll_second_factor(enroll_totp(""))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "password: sign in again or send the password; the last was over 10 minutes ago"
        )
    );
    let remove = |password: &str| v1::RemoveSecondFactorRequest {
        factor_id: factor.id.clone(),
        password: password.into(),
    };
    let error = mine.remove_second_factor(remove("")).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let error = mine
        .enroll_second_factor(enroll_totp("not the password"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "password: incorrect")
    );
    mine.enroll_second_factor(enroll_totp(PASSWORD))
        .await
        .expect("the password proved again");
    // The proof is remembered by the session for the next ten minutes.
    mine.remove_second_factor(remove("")).await.unwrap();
}
