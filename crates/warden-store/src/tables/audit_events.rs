//! The `audit_events` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub actor_user_id: Option<String>,
    pub actor_kind: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub created_at: DateTimeUtc,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
