//! Spent refresh tokens (reuse detection), password resets and attempt throttles (issue #5).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("spent_refresh_tokens")
                    .col(string("token_hash").primary_key())
                    .col(string("session_id"))
                    .col(timestamp_with_time_zone("spent_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_spent_refresh_tokens_session")
                            .from_col(Alias::new("session_id"))
                            .to(Alias::new("sessions"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("password_resets")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("user_id"))
                    .col(string("token_hash").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_password_resets_user")
                            .from_col(Alias::new("user_id"))
                            .to(Alias::new("users"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("throttles")
                    .col(string("key").primary_key())
                    .col(big_integer("failures"))
                    .col(timestamp_with_time_zone("last_attempt_at"))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_user")
                    .table("sessions")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
