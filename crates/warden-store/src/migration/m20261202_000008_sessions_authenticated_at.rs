//! When each session last proved a password or a factor, for the changes that need a recent proof
//! (SPEC §4, issue 14). Sessions started before this column read as never: they prove it again.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("sessions")
                    .add_column(timestamp_with_time_zone_null("authenticated_at"))
                    .to_owned(),
            )
            .await
    }
}
