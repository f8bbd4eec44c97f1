//! End-to-end tests: one binary, a module per service, each test on its own server and database.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod abuse;
mod api_keys;
mod arbitrary_strings;
mod audit;
mod auth;
mod authorization;
mod decision_cache;
mod entities;
mod errors;
mod groups;
mod health;
mod http;
mod janitor;
mod lookups;
mod notifications;
mod organizations;
mod ownership;
mod reauthentication;
mod reflection;
mod role_changes;
mod roles;
mod scim;
mod second_factors;
mod secrets;
mod session_management;
mod sessions;
mod settings;
mod shared_cache;
mod sso;
mod startup;
mod telemetry;
mod throttling;
mod tls;
mod users;
