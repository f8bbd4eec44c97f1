//! Schema migrations, applied on start (SPEC §7); sea-orm names each after its file.
use sea_orm_migration::prelude::*;

mod m20261201_000001_initial;
mod m20261201_000002_invitations_outbox_audit;
mod m20261201_000003_groups;
mod m20261201_000004_sessions_hardening;
mod m20261201_000005_second_factors;
mod m20261201_000006_sso;
mod m20261202_000007_sso_domains;
mod m20261202_000008_sessions_authenticated_at;
mod m20261202_000009_organization_revisions;
mod m20261202_000010_organization_indexes;
mod m20261202_000011_revision_changes;
mod m20261202_000012_entity_archive;
mod m20261202_000013_session_details;
mod m20261202_000014_client_certificate_mappings;
mod m20261202_000020_scim;
mod m20261202_000030_passkeys;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261201_000001_initial::Migration),
            Box::new(m20261201_000002_invitations_outbox_audit::Migration),
            Box::new(m20261201_000003_groups::Migration),
            Box::new(m20261201_000004_sessions_hardening::Migration),
            Box::new(m20261201_000005_second_factors::Migration),
            Box::new(m20261201_000006_sso::Migration),
            Box::new(m20261202_000007_sso_domains::Migration),
            Box::new(m20261202_000008_sessions_authenticated_at::Migration),
            Box::new(m20261202_000009_organization_revisions::Migration),
            Box::new(m20261202_000010_organization_indexes::Migration),
            Box::new(m20261202_000011_revision_changes::Migration),
            Box::new(m20261202_000012_entity_archive::Migration),
            Box::new(m20261202_000013_session_details::Migration),
            Box::new(m20261202_000014_client_certificate_mappings::Migration),
            Box::new(m20261202_000020_scim::Migration),
            Box::new(m20261202_000030_passkeys::Migration),
        ]
    }
}
