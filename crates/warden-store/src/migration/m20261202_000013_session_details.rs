//! What ListSessions shows of a session (issue 16): when it was last used, and the client address
//! and user agent of its sign-in or latest refresh; and each user's last activity for ListUsers.
//! Sessions and users older than these columns read as never used.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in [
            timestamp_with_time_zone_null("last_used_at"),
            string_len_null("client_address", 64),
            string_len_null("user_agent", 256),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("sessions")
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("users")
                    .add_column(timestamp_with_time_zone_null("last_active_at"))
                    .to_owned(),
            )
            .await
    }
}
