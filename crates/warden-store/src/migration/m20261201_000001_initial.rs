//! Organisations, entities, users and their grants, roles, sessions, API keys and signing keys.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let organization_fk = |table: &str| {
            ForeignKey::create()
                .name(format!("fk_{table}_organization"))
                .from_col(Alias::new("organization_id"))
                .to(Alias::new("organizations"), Alias::new("id"))
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table("organizations")
                    .col(string("id").primary_key())
                    .col(string("name"))
                    .col(big_integer("invitation_ttl_seconds"))
                    .col(string("allowed_second_factors"))
                    .col(boolean("require_second_factor"))
                    .col(boolean("sso_enabled"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("entities")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("name"))
                    .col(string_null("parent_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut organization_fk("entities"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_entities_parent")
                            .from_col(Alias::new("parent_id"))
                            .to(Alias::new("entities"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("email").unique_key())
                    .col(string("first_name"))
                    .col(string("last_name"))
                    .col(string("status"))
                    .col(string_null("owner_of").unique_key())
                    .col(text_null("password_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_login_at"))
                    .foreign_key(&mut organization_fk("users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("roles")
                    .col(string("organization_id"))
                    .col(string("id"))
                    .col(string("sort_key"))
                    .col(string("name"))
                    .col(text("description"))
                    .col(boolean("predefined"))
                    .primary_key(Index::create().col("organization_id").col("id"))
                    .foreign_key(&mut organization_fk("roles"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_roles_name")
                    .table("roles")
                    .col("organization_id")
                    .col("name")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_roles_sort")
                    .table("roles")
                    .col("organization_id")
                    .col("sort_key")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("role_permissions")
                    .col(string("organization_id"))
                    .col(string("role_id"))
                    .col(string("permission"))
                    .primary_key(
                        Index::create()
                            .col("organization_id")
                            .col("role_id")
                            .col("permission"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_role_permissions_role")
                            .from_col(Alias::new("organization_id"))
                            .from_col(Alias::new("role_id"))
                            .to_col(Alias::new("organization_id"))
                            .to_col(Alias::new("id"))
                            .to_tbl(Alias::new("roles"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            ("user_grants", "role_id"),
            ("direct_permissions", "permission"),
        ] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .col(string("id").primary_key())
                        .col(string("organization_id"))
                        .col(string("user_id"))
                        .col(string(column))
                        .col(string_null("entity_id"))
                        .foreign_key(
                            ForeignKey::create()
                                .name(format!("fk_{table}_user"))
                                .from_col(Alias::new("user_id"))
                                .to(Alias::new("users"), Alias::new("id"))
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .name(format!("fk_{table}_entity"))
                                .from_col(Alias::new("entity_id"))
                                .to(Alias::new("entities"), Alias::new("id")),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(format!("ix_{table}_user"))
                        .table(table)
                        .col("user_id")
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("sessions")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("user_id"))
                    .col(string("refresh_hash").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from_col(Alias::new("user_id"))
                            .to(Alias::new("users"), Alias::new("id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .col(string("id").primary_key())
                    .col(string("organization_id"))
                    .col(string("name"))
                    .col(string("prefix").unique_key())
                    .col(string("secret_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .foreign_key(&mut organization_fk("api_keys"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("signing_keys")
                    .col(string("kid").primary_key())
                    .col(blob("private_der"))
                    .col(blob("public_key"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
