//! Indexes for the reads every cold check and every list makes by organisation: the entity tree
//! (`entities` had none on `organization_id`, issue 13) and an organisation's users.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["entities", "users"] {
            manager
                .create_index(
                    Index::create()
                        .name(format!("ix_{table}_organization"))
                        .table(table)
                        .col("organization_id")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
