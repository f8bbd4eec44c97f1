//! The `users` table.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub organization_id: String,
    /// Lowercased; unique across all organisations (SPEC §2).
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub status: String,
    /// The organisation id for its owner, NULL for everyone else: a unique column, so the database
    /// itself holds exactly one owner per organisation.
    pub owner_of: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    /// The last use of any of the user's sessions, at most a minute behind.
    pub last_active_at: Option<DateTimeUtc>,
    /// When the live invitation of a pending user lapses; NULL otherwise.
    pub invitation_expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
