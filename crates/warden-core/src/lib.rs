//! Warden's domain: ids, validation rules, the permission catalogue, grants, the decision function and
//! the storage traits. No IO here: time and randomness are arguments, storage is behind `ports`.
pub mod addresses;
pub mod audit;
pub mod catalogue;
pub mod clock;
pub mod compiled;
pub mod decision;
pub mod entities;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod grants;
pub mod ids;
pub mod model;
pub mod network;
pub mod ownership;
pub mod page;
pub mod passkeys;
pub mod password;
pub mod password_reset;
pub mod ports;
pub mod roles;
pub mod rules;
pub mod second_factor;
pub mod settings;
pub mod sign_in;
pub mod sso;
pub mod throttle;
pub mod users;
pub mod validate;

pub use error::Error;
