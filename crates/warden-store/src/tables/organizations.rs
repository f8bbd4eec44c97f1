//! The `organizations` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub invitation_ttl_seconds: i64,
    /// Comma-separated method names (`totp,email,sms`).
    pub allowed_second_factors: String,
    pub require_second_factor: bool,
    pub sso_enabled: bool,
    /// Some SCIM token is live; kept by the SCIM token writes only.
    pub scim_enabled: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
