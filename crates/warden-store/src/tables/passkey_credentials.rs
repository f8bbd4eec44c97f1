//! The `passkey_credentials` table: the WebAuthn credential behind each PASSKEY factor.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub factor_id: String,
    pub organization_id: String,
    pub user_id: String,
    /// base64url, unique across organisations.
    pub credential_id: String,
    /// The relying-party library's credential as JSON (public key, counter, flags).
    pub credential: String,
    /// The last signature counter accepted.
    pub sign_count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
