//! One tonic service per file, each a thin layer: authenticate, validate, call the store, convert.
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod authorization;
pub mod groups;
pub mod moves;
pub mod notifications;
pub mod organizations;
pub mod passkeys;
pub mod roles;
pub mod scim_tokens;
pub mod second_factors;
pub mod sessions;
pub mod sso;
pub mod users;
