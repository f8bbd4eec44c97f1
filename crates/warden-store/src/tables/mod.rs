//! sea-orm entities, one per table; ids are UUID text so SQLite and PostgreSQL share one schema.
pub mod api_keys;
pub mod audit_events;
pub mod direct_permissions;
pub mod entities;
pub mod group_grants;
pub mod group_members;
pub mod groups;
pub mod invitations;
pub mod notifications;
pub mod organizations;
pub mod role_permissions;
pub mod roles;
pub mod sessions;
pub mod signing_keys;
pub mod user_grants;
pub mod users;
