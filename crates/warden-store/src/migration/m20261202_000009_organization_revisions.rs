//! Each organisation's revision: bumped inside every write that can change an authorization answer,
//! so a cached decision is reused only while its organisation's revision is unchanged (SPEC §5).
//! A table of its own, not a column of `organizations`: writes that lock the organisation row first
//! (ownership, settings) never wait on it, and every write takes the revision row last.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("organization_revisions")
                    .col(string("organization_id").primary_key())
                    .col(big_integer("revision"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_organization_revisions_organization")
                            .from_col(Alias::new("organization_id"))
                            .to(Alias::new("organizations"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        let existing = Query::insert()
            .into_table(Alias::new("organization_revisions"))
            .columns([Alias::new("organization_id"), Alias::new("revision")])
            .select_from(
                Query::select()
                    .column(Alias::new("id"))
                    .expr(Expr::val(0))
                    .from(Alias::new("organizations"))
                    .to_owned(),
            )
            .map_err(|error| DbErr::Migration(error.to_string()))?
            .to_owned();
        manager.exec_stmt(existing).await
    }
}
