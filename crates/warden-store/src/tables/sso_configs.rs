//! The `sso_configs` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sso_configs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    pub enabled: bool,
    pub issuer: String,
    pub client_id: String,
    pub jwks_json: String,
    pub default_role_id: String,
    /// A JSON array of lowercase domains.
    pub email_domains: String,
    pub allow_privileged_default_role: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
