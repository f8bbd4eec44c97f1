//! Passkeys (SPEC §4): a name on second factors, the WebAuthn credential behind each PASSKEY
//! factor (its credential id unique across organisations), and the begun ceremonies, kept in the
//! database so any replica can finish what another began.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("second_factors")
                    .add_column(string_null("name"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("passkey_credentials")
                    .col(string("factor_id").primary_key())
                    .col(string("organization_id"))
                    .col(string("user_id"))
                    .col(string("credential_id").unique_key())
                    .col(text("credential"))
                    .col(big_integer("sign_count"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_passkey_credentials_factor")
                            .from_col(Alias::new("factor_id"))
                            .to(Alias::new("second_factors"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_passkey_credentials_user")
                    .table("passkey_credentials")
                    .col("organization_id")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webauthn_ceremonies")
                    .col(string("id").primary_key())
                    .col(string("kind"))
                    .col(string_null("organization_id"))
                    .col(string_null("user_id"))
                    .col(string_null("challenge_id"))
                    .col(text("state"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webauthn_ceremonies_challenge")
                    .table("webauthn_ceremonies")
                    .col("challenge_id")
                    .to_owned(),
            )
            .await
    }
}
