//! SCIM 2.0 provisioning (issue 18, SPEC §5a): the identity provider's tokens (stored as hashes),
//! the external ids it gives users and groups, and `organizations.scim_enabled`, true while some
//! token is live (the organisation is then "managed by your identity provider").
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("scim_tokens")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("name"))
                    .col(string("prefix").unique_key())
                    .col(string("secret_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_scim_tokens_organization")
                            .from_col(Alias::new("organization_id"))
                            .to(Alias::new("organizations"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scim_tokens_organization")
                    .table("scim_tokens")
                    .col("organization_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("scim_external_ids")
                    .col(string("resource_type"))
                    .col(string("resource_id"))
                    .col(string("organization_id"))
                    .col(text("external_id"))
                    .primary_key(
                        Index::create()
                            .col(Alias::new("resource_type"))
                            .col(Alias::new("resource_id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scim_external_ids_organization")
                    .table("scim_external_ids")
                    .col("organization_id")
                    .col("resource_type")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("organizations")
                    .add_column(boolean("scim_enabled").default(false))
                    .to_owned(),
            )
            .await
    }
}
