//! The `second_factors` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "second_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub method: String,
    pub confirmed: bool,
    pub phone_number: Option<String>,
    /// TOTP secret sealed with the server's secret key.
    pub encrypted_secret: Option<String>,
    /// The last TOTP step accepted: a step is accepted at most once.
    pub last_used_step: Option<i64>,
    /// Email/SMS enrolment: the hashed confirmation code.
    pub pending_code_hash: Option<String>,
    pub pending_code_expires_at: Option<DateTimeUtc>,
    pub failed_attempts: i64,
    /// Passkeys: the name the user gave it.
    pub name: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
