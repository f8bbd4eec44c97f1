//! Second factors, sign-in challenges and recovery codes (issue #6).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn user_fk(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_user"))
        .from_col(Alias::new("user_id"))
        .to(Alias::new("users"), Alias::new("id"))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("second_factors")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("user_id"))
                    .col(string("method"))
                    .col(boolean("confirmed"))
                    .col(string_null("phone_number"))
                    .col(text_null("encrypted_secret"))
                    .col(big_integer_null("last_used_step"))
                    .col(string_null("pending_code_hash"))
                    .col(timestamp_with_time_zone_null("pending_code_expires_at"))
                    .col(big_integer("failed_attempts"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut user_fk("second_factors"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_second_factors_user")
                    .table("second_factors")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sign_in_challenges")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("user_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(big_integer("failed_attempts"))
                    .col(string_null("code_hash"))
                    .col(string_null("code_factor_id"))
                    .col(timestamp_with_time_zone_null("code_expires_at"))
                    .col(big_integer("code_failed_attempts"))
                    .col(timestamp_with_time_zone_null("completed_at"))
                    .foreign_key(&mut user_fk("sign_in_challenges"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("recovery_codes")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("user_id"))
                    .col(string("code_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(&mut user_fk("recovery_codes"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recovery_codes_user")
                    .table("recovery_codes")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
