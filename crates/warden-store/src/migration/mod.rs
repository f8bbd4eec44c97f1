//! Schema migrations, applied on start (SPEC §7); sea-orm names each after its file.
use sea_orm_migration::prelude::*;

mod m20261201_000001_initial;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261201_000001_initial::Migration)]
    }
}
