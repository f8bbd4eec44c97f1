//! SSO provisioning limits (SPEC §4, issue #14): the email domains whose addresses are provisioned
//! or linked (a JSON array; empty means none) and the owner's opt-in to a privileged default role.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("sso_configs")
                    .add_column(text("email_domains").default("[]"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("sso_configs")
                    .add_column(boolean("allow_privileged_default_role").default(false))
                    .to_owned(),
            )
            .await
    }
}
