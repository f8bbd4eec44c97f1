//! Mutual TLS: a client certificate's SAN URI mapped to an organisation's service principal. The
//! URI is unique across organisations, so a certificate authenticates as at most one principal.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("client_certificate_mappings")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("name"))
                    .col(text("uri").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_client_certificate_mappings_organization")
                            .from_col(Alias::new("organization_id"))
                            .to(Alias::new("organizations"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_client_certificate_mappings_organization")
                    .table("client_certificate_mappings")
                    .col("organization_id")
                    .to_owned(),
            )
            .await
    }
}
