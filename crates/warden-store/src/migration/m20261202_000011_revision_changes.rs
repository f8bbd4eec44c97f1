//! Revisions become one sequence for the whole deployment, and every revision says what it changed.
//!
//! `revision_sequence` holds one row, bumped by every write that can change an answer as the last
//! statement before its commit: its row lock orders those commits, so revision N commits before
//! N + 1 can be issued. A replica that has read every change up to N has therefore seen every write
//! acknowledged before it read, and polls `revision_changes` (append-only, one row per revision)
//! for what came after: the organisation (none for a change to every organisation), the action
//! and its target.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("revision_sequence")
                    .col(integer("id").primary_key())
                    .col(big_integer("revision"))
                    .to_owned(),
            )
            .await?;
        // Start above every revision already issued per organisation.
        let start = Query::insert()
            .into_table(Alias::new("revision_sequence"))
            .columns([Alias::new("id"), Alias::new("revision")])
            .select_from(
                Query::select()
                    .expr(Expr::val(1))
                    .expr(Func::coalesce([
                        Expr::col(Alias::new("revision")).max(),
                        Expr::val(0),
                    ]))
                    .from(Alias::new("organization_revisions"))
                    .to_owned(),
            )
            .map_err(|error| DbErr::Migration(error.to_string()))?
            .to_owned();
        manager.exec_stmt(start).await?;
        manager
            .create_table(
                Table::create()
                    .table("revision_changes")
                    .col(big_integer("revision").primary_key())
                    .col(string_null("organization_id"))
                    .col(string("action"))
                    .col(string("target_type"))
                    .col(string("target_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await
    }
}
