//! The `webauthn_ceremonies` table: begun passkey registrations and assertions, single use.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webauthn_ceremonies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `registration`, `second_factor` or `sign_in`.
    pub kind: String,
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub challenge_id: Option<String>,
    /// The relying-party library's state as JSON; its challenge is inside.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
