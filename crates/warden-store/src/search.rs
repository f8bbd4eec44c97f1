//! `UserSearch`: an organisation's users, filtered by status, role, entity reached and text, newest
//! first. Every condition is a subquery of one statement, so a page costs three queries.
use async_trait::async_trait;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait as _, Func, Query},
};
use warden_core::{
    Error,
    ids::OrganizationId,
    model::{StatusFilter, User, UserFilter, UserStatus},
    ports::UserSearch,
};

use crate::{
    SqlStore, internal,
    tables::{direct_permissions, entities, group_grants, group_members, user_grants, users},
    users::load_users,
};

/// `%` and `_` in a search are literal characters, not wildcards.
fn like_pattern(query: &str) -> String {
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[async_trait]
impl UserSearch for SqlStore {
    async fn list_users(
        &self,
        organization: OrganizationId,
        filter: &UserFilter,
    ) -> Result<Vec<User>, Error> {
        let mut query = users::Entity::find()
            .filter(users::Column::OrganizationId.eq(organization.to_string()));
        let pending = users::Column::Status.eq(UserStatus::Pending.as_str());
        let lapsed = users::Column::InvitationExpiresAt.lte(filter.now);
        query = match filter.status {
            StatusFilter::NotArchived => {
                query.filter(users::Column::Status.ne(UserStatus::Archived.as_str()))
            }
            StatusFilter::PendingOrExpired => query.filter(pending),
            StatusFilter::Is(UserStatus::Expired) => query.filter(pending).filter(lapsed),
            StatusFilter::Is(UserStatus::Pending) => query.filter(pending).filter(
                Condition::any()
                    .add(users::Column::InvitationExpiresAt.is_null())
                    .add(users::Column::InvitationExpiresAt.gt(filter.now)),
            ),
            StatusFilter::Is(status) => query.filter(users::Column::Status.eq(status.as_str())),
        };
        if filter.role.is_some() || filter.entity.is_some() {
            // A user holds a role, or reaches an entity, directly or through a group; an entity is
            // reached by a grant on it, on its legal entity, or on all entities.
            let lineage: Option<Vec<String>> = match filter.entity {
                None => None,
                Some(entity) => {
                    let row = entities::Entity::find_by_id(entity.to_string())
                        .filter(entities::Column::OrganizationId.eq(organization.to_string()))
                        .one(&self.db)
                        .await
                        .map_err(internal)?;
                    Some(row.map_or_else(
                        || vec![entity.to_string()],
                        |row| std::iter::once(row.id).chain(row.parent_id).collect(),
                    ))
                }
            };
            let reaches = |column: sea_orm::sea_query::SimpleExpr,
                           null: sea_orm::sea_query::SimpleExpr| {
                match &lineage {
                    None => Condition::all(),
                    Some(ids) => Condition::any().add(column.is_in(ids.clone())).add(null),
                }
            };
            let org = organization.to_string();
            let mut direct = Query::select()
                .column(user_grants::Column::UserId)
                .from(user_grants::Entity)
                .and_where(user_grants::Column::OrganizationId.eq(org.clone()))
                .cond_where(reaches(
                    Expr::col(user_grants::Column::EntityId),
                    user_grants::Column::EntityId.is_null(),
                ))
                .to_owned();
            let mut grouped = Query::select()
                .column((group_members::Entity, group_members::Column::UserId))
                .from(group_members::Entity)
                .inner_join(
                    group_grants::Entity,
                    Expr::col((group_grants::Entity, group_grants::Column::GroupId))
                        .equals((group_members::Entity, group_members::Column::GroupId)),
                )
                .and_where(
                    Expr::col((group_members::Entity, group_members::Column::OrganizationId))
                        .eq(org.clone()),
                )
                .cond_where(reaches(
                    Expr::col((group_grants::Entity, group_grants::Column::EntityId)),
                    Expr::col((group_grants::Entity, group_grants::Column::EntityId)).is_null(),
                ))
                .to_owned();
            if let Some(role) = &filter.role {
                direct.and_where(user_grants::Column::RoleId.eq(role.as_str()));
                grouped.and_where(
                    Expr::col((group_grants::Entity, group_grants::Column::RoleId))
                        .eq(role.as_str()),
                );
            }
            let mut holders = Condition::any()
                .add(users::Column::Id.in_subquery(direct))
                .add(users::Column::Id.in_subquery(grouped));
            if filter.role.is_none() {
                let permissions = Query::select()
                    .column(direct_permissions::Column::UserId)
                    .from(direct_permissions::Entity)
                    .and_where(direct_permissions::Column::OrganizationId.eq(org))
                    .cond_where(reaches(
                        Expr::col(direct_permissions::Column::EntityId),
                        direct_permissions::Column::EntityId.is_null(),
                    ))
                    .to_owned();
                holders = holders.add(users::Column::Id.in_subquery(permissions));
            }
            query = query.filter(holders);
        }
        if let Some(text) = &filter.query {
            let pattern = like_pattern(text);
            let matches = |column: users::Column| {
                Expr::expr(Func::lower(Expr::col(column)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query = query.filter(
                Condition::any()
                    .add(matches(users::Column::Email))
                    .add(matches(users::Column::FirstName))
                    .add(matches(users::Column::LastName)),
            );
        }
        if let Some(before) = filter.before_id {
            query = query.filter(users::Column::Id.lt(before.to_string()));
        }
        let rows = query
            .order_by_desc(users::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await
            .map_err(internal)?;
        load_users(&self.db, rows).await
    }
}
