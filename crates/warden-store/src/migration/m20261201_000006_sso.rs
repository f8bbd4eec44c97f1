//! OpenID Connect single sign-on: configurations, linked identities, spent ID tokens (issue #6).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("sso_configs")
                    .col(string("organization_id").primary_key())
                    .col(boolean("enabled"))
                    .col(string("issuer"))
                    .col(string("client_id"))
                    .col(text("jwks_json"))
                    .col(string("default_role_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_configs_organization")
                            .from_col(Alias::new("organization_id"))
                            .to(Alias::new("organizations"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sso_identities")
                    .col(string("organization_id"))
                    .col(string("issuer"))
                    .col(string("subject"))
                    .col(string("user_id").unique_key())
                    .primary_key(
                        Index::create()
                            .col("organization_id")
                            .col("issuer")
                            .col("subject"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sso_identities_user")
                            .from_col(Alias::new("user_id"))
                            .to(Alias::new("users"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("sso_used_tokens")
                    .col(string("token_hash").primary_key())
                    .col(timestamp_with_time_zone("expires_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
