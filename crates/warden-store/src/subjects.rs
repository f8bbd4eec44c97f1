//! `SubjectSource`: what a decision needs about one user, in a fixed number of queries.
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
};
use warden_core::{
    Error,
    decision::{EntityTree, Holding, Source, Subject},
    ids::{OrganizationId, PermissionKey, RoleId, UserId},
    model::{Scope, User, UserStatus},
    ports::{Change, SubjectSource},
    rules::Affected,
    users::{FactorStanding, status_decided},
};

use crate::{
    SqlStore,
    convert::{self, scopes, uuid},
    internal,
    roles::permissions_of,
    tables::{entities, organization_revisions, organizations, users},
};

#[async_trait]
impl SubjectSource for SqlStore {
    async fn load_subject(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<Subject>, Error> {
        Ok(self
            .load_subjects(organization, &[user])
            .await?
            .pop()
            .and_then(|(_, subject)| subject))
    }

    async fn load_entity_tree(&self, organization: OrganizationId) -> Result<EntityTree, Error> {
        entity_tree(&self.db, organization).await
    }

    async fn load_subjects(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Vec<(UserId, Option<Subject>)>, Error> {
        let snapshot = self.snapshot().await?;
        let subjects = subjects(&snapshot, organization, users).await?;
        snapshot.commit().await.map_err(internal)?;
        Ok(subjects)
    }

    async fn user_ids(
        &self,
        organization: OrganizationId,
        after: Option<UserId>,
        limit: u64,
    ) -> Result<Vec<UserId>, Error> {
        let mut query = users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .filter(users::Column::OrganizationId.eq(organization.to_string()));
        if let Some(after) = after {
            query = query.filter(users::Column::Id.gt(after.to_string()));
        }
        query
            .order_by_asc(users::Column::Id)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
            .map_err(internal)?
            .iter()
            .map(|id| Ok(UserId(uuid(id)?)))
            .collect()
    }

    async fn revisions(&self) -> Result<(i64, Vec<(OrganizationId, i64)>), Error> {
        self.all_revisions().await
    }

    async fn changes_after(&self, revision: i64, limit: u64) -> Result<Vec<Change>, Error> {
        self.changes(revision, limit).await
    }

    async fn revision(&self, organization: OrganizationId) -> Result<Option<i64>, Error> {
        let row = organization_revisions::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?;
        if let Some(row) = row {
            return Ok(Some(row.revision));
        }
        // Every organisation gets its row with its first audited write; without one, it exists
        // only if its row is there (revision 0) or it does not exist at all.
        let exists = organizations::Entity::find_by_id(organization.to_string())
            .one(&self.db)
            .await
            .map_err(internal)?
            .is_some();
        Ok(exists.then_some(0))
    }
}

/// The caller and everyone in `holders` (each once), with the tree, as `db` reads them: what a
/// role or group change decides on inside its transaction.
pub(crate) async fn affected(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    caller: UserId,
    holders: impl IntoIterator<Item = String>,
    scopes: Vec<Scope>,
) -> Result<Affected, Error> {
    let not_found = || Error::NotFound("user");
    let caller = subject(db, organization, caller)
        .await?
        .ok_or_else(not_found)?;
    let holders = holders
        .into_iter()
        .collect::<BTreeSet<_>>()
        .iter()
        .map(|holder| Ok(UserId(uuid(holder)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let loaded = subjects(db, organization, &holders)
        .await?
        .into_iter()
        .map(|(_, subject)| subject.ok_or_else(not_found))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Affected {
        caller,
        holders: loaded,
        scopes,
        tree: entity_tree(db, organization).await?,
    })
}

/// One user's subject as `db` (a transaction or the pool) reads it.
pub(crate) async fn subject(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    user: UserId,
) -> Result<Option<Subject>, Error> {
    Ok(subjects(db, organization, &[user])
        .await?
        .pop()
        .and_then(|(_, subject)| subject))
}

/// The subjects of `users` as `db` reads them, in three queries whatever their number: the users,
/// everything they hold (see [`held`]), and the permissions of the roles among it.
pub(crate) async fn subjects(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
    users: &[UserId],
) -> Result<Vec<(UserId, Option<Subject>)>, Error> {
    let org = organization.to_string();
    let ids: Vec<String> = users.iter().map(ToString::to_string).collect();
    let rows = users::Entity::find()
        .filter(users::Column::OrganizationId.eq(org.as_str()))
        .filter(users::Column::Id.is_in(ids))
        .all(db)
        .await
        .map_err(internal)?;
    let found_ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut holds: BTreeMap<String, Holds> = BTreeMap::new();
    let mut required = false;
    for row in held(db, &org, &found_ids).await? {
        let Some(user) = row.user_id else {
            required = true;
            continue;
        };
        let holds = holds.entry(user).or_default();
        match (row.kind.as_str(), row.item) {
            ("role", Some(role)) => holds.roles.push((role, row.entity_id)),
            ("direct", Some(permission)) => holds.direct.push((permission, row.entity_id)),
            ("group", Some(role)) => {
                let group = row.group_id.unwrap_or_default();
                let name = row.group_name.unwrap_or_else(|| group.clone());
                holds.groups.push(((group, name, role), row.entity_id));
            }
            ("factor", _) => holds.confirmed_factor = true,
            (kind, _) => return Err(Error::internal(format!("held row of kind {kind:?}"))),
        }
    }
    let roles = holds
        .values()
        .flat_map(|holds| {
            let own = holds.roles.iter().map(|(role, _)| role.clone());
            own.chain(holds.groups.iter().map(|((_, _, role), _)| role.clone()))
        })
        .collect::<BTreeSet<_>>();
    let permissions = if roles.is_empty() {
        BTreeMap::new()
    } else {
        permissions_of(db, organization, roles).await?
    };
    let mut subjects: BTreeMap<UserId, Subject> = BTreeMap::new();
    for row in rows {
        let holds = holds.remove(&row.id).unwrap_or_default();
        let user = convert::user(row, holds.roles, holds.direct)?;
        let standing = FactorStanding::of(required, holds.confirmed_factor);
        let status = status_decided(&user, standing);
        let subject = assemble(user, status, holds.groups, &permissions)?;
        subjects.insert(subject.user, subject);
    }
    Ok(users
        .iter()
        .map(|user| (*user, subjects.get(user).cloned()))
        .collect())
}

/// What one user holds, as (key, entity) rows: a NULL entity means every entity.
#[derive(Default)]
struct Holds {
    roles: Vec<(String, Option<String>)>,
    direct: Vec<(String, Option<String>)>,
    /// ((group id, group name, role), entity).
    groups: Vec<((String, String, String), Option<String>)>,
    confirmed_factor: bool,
}

/// One row of what the users hold: a role (`item` is the role), a direct permission (`item` is the
/// permission), a role of one of their groups, a confirmed second factor, or, with no user, the
/// organisation's rule that a second factor is required.
#[derive(FromQueryResult)]
struct HeldRow {
    user_id: Option<String>,
    kind: String,
    item: Option<String>,
    entity_id: Option<String>,
    group_id: Option<String>,
    group_name: Option<String>,
}

/// Everything `users` hold in `organization`, in one query.
async fn held(
    db: &impl ConnectionTrait,
    organization: &str,
    users: &[String],
) -> Result<Vec<HeldRow>, Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = Query::new(db.get_database_backend());
    let sql = format!(
        "SELECT user_id, 'role' AS kind, role_id AS item, entity_id, \
                CAST(NULL AS TEXT) AS group_id, CAST(NULL AS TEXT) AS group_name \
           FROM user_grants WHERE organization_id = {o1} AND user_id IN ({u1}) \
         UNION ALL \
         SELECT user_id, 'direct', permission, entity_id, NULL, NULL \
           FROM direct_permissions WHERE organization_id = {o2} AND user_id IN ({u2}) \
         UNION ALL \
         SELECT m.user_id, 'group', gg.role_id, gg.entity_id, gg.group_id, g.name \
           FROM group_members m \
           JOIN group_grants gg ON gg.organization_id = m.organization_id AND gg.group_id = m.group_id \
           JOIN \"groups\" g ON g.id = m.group_id \
          WHERE m.organization_id = {o3} AND m.user_id IN ({u3}) \
         UNION ALL \
         SELECT DISTINCT user_id, 'factor', NULL, NULL, NULL, NULL \
           FROM second_factors \
          WHERE organization_id = {o4} AND confirmed = {t1} AND user_id IN ({u4}) \
         UNION ALL \
         SELECT NULL, 'required', NULL, NULL, NULL, NULL \
           FROM organizations WHERE id = {o5} AND require_second_factor = {t2}",
        o1 = query.bind(organization),
        u1 = query.list(users),
        o2 = query.bind(organization),
        u2 = query.list(users),
        o3 = query.bind(organization),
        u3 = query.list(users),
        o4 = query.bind(organization),
        t1 = query.bind(true),
        u4 = query.list(users),
        o5 = query.bind(organization),
        t2 = query.bind(true),
    );
    HeldRow::find_by_statement(query.statement(sql))
        .all(db)
        .await
        .map_err(internal)
}

/// Values bound in the order their placeholders appear, in the backend's placeholder syntax.
struct Query {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Query {
    fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            values: Vec::new(),
        }
    }

    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_owned(),
        }
    }

    fn list(&mut self, values: &[String]) -> String {
        let placeholders: Vec<String> = values
            .iter()
            .map(|value| self.bind(value.as_str()))
            .collect();
        placeholders.join(", ")
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// One subject from its user, the grants of its groups and the permissions of every role.
fn assemble(
    user: User,
    status: UserStatus,
    grants_of_groups: Vec<((String, String, String), Option<String>)>,
    permissions: &BTreeMap<String, Vec<PermissionKey>>,
) -> Result<Subject, Error> {
    let of = |role: &str| -> BTreeSet<PermissionKey> {
        permissions
            .get(role)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    };
    let mut holdings: Vec<Holding> = user
        .grants
        .into_iter()
        .map(|grant| Holding {
            permissions: of(grant.role.as_str()),
            source: Source::Role(grant.role),
            scope: grant.scope,
        })
        .collect();
    holdings.extend(
        scopes(grants_of_groups)?
            .into_iter()
            .map(|((_, name, role), scope)| Holding {
                permissions: of(&role),
                source: Source::Group {
                    group: name,
                    role: RoleId::new(role),
                },
                scope,
            }),
    );
    // Direct permissions with the same scope become one holding each, so explain stays readable.
    let mut direct: Vec<(Scope, BTreeSet<PermissionKey>)> = Vec::new();
    for grant in user.direct_grants {
        match direct.iter_mut().find(|(scope, _)| *scope == grant.scope) {
            Some((_, permissions)) => {
                permissions.insert(grant.permission);
            }
            None => direct.push((grant.scope, BTreeSet::from([grant.permission]))),
        }
    }
    holdings.extend(direct.into_iter().map(|(scope, permissions)| Holding {
        source: Source::Direct,
        scope,
        permissions,
    }));
    Ok(Subject {
        user: user.id,
        status,
        owner: user.owner,
        holdings,
    })
}

pub(crate) async fn entity_tree(
    db: &impl ConnectionTrait,
    organization: OrganizationId,
) -> Result<EntityTree, Error> {
    let rows = entities::Entity::find()
        .filter(entities::Column::OrganizationId.eq(organization.to_string()))
        .all(db)
        .await
        .map_err(internal)?;
    let entities = rows
        .into_iter()
        .map(crate::convert::entity)
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(EntityTree::new(&entities))
}
