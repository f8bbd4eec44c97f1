//! ns per decision: Warden's compiled subject beside `decide`, cedar-policy and casbin, on the same
//! seeded RBAC data and the same mix of checks. Before timing, every engine must give `decide`'s
//! answer on a sample of the mix, so the comparison is between equals.
use std::{collections::HashMap, hint::black_box, str::FromStr, sync::Arc};

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use cedar_policy::{
    Authorizer, Context, Entities, Entity as CedarEntity, EntityId as CedarId, EntityTypeName,
    EntityUid, PolicySet, Request, RestrictedExpression,
};
use criterion::{Criterion, criterion_group, criterion_main};
use warden_bench::{Dataset, GrantScope, Probe, ProbeTarget};
use warden_core::{
    compiled::{CompiledSubject, CompiledTree},
    decision::{self, Subject, Target},
    ids::{PermissionKey, UserId},
    model::UserStatus,
};

const SEED: u64 = 13;
/// Checks in the mix; the benchmark cycles through them.
const PROBES: usize = 8192;
/// Checks on which every engine must agree with `decide` before anything is timed.
const SAMPLE: usize = 2000;

/// Every engine's form of the data and of each check, built before timing.
struct Engines {
    data: Dataset,
    probes: Vec<Probe>,
    subjects: Vec<Subject>,
    tree: decision::EntityTree,
    compiled: Vec<Arc<CompiledSubject>>,
    by_user: HashMap<UserId, Arc<CompiledSubject>>,
    cedar: Cedar,
    casbin: Casbin,
}

struct Cedar {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    requests: Vec<Request>,
}

struct Casbin {
    enforcer: Enforcer,
    requests: Vec<(String, String, String)>,
}

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(kind).expect("a valid type name"),
        CedarId::new(id),
    )
}

/// One policy per role: its actions, on any resource inside one of the scopes the principal holds
/// the role on (the organisation for full access; a legal entity's segments are inside it).
fn cedar(data: &Dataset, probes: &[Probe]) -> Cedar {
    let keys = |positions: &[usize]| -> Vec<String> {
        positions
            .iter()
            .map(|at| format!("Action::\"{}\"", data.catalogue.permissions()[*at].key))
            .collect()
    };
    let text: String = data
        .roles
        .iter()
        .map(|role| {
            format!(
                "permit(principal, action in [{}], resource) when {{ principal has {id} && resource in principal.{id} }};\n",
                keys(&role.permissions).join(", "),
                id = role.id,
            )
        })
        .collect();
    let policies = PolicySet::from_str(&text).expect("the policies parse");
    let organization = uid("Org", "org");
    let entity_uid = |at: usize| uid("Entity", &data.entities[at].id.to_string());
    let mut entities = vec![CedarEntity::new_no_attrs(
        organization.clone(),
        Default::default(),
    )];
    for (at, entity) in data.entities.iter().enumerate() {
        let parent = entity.parent.map_or(organization.clone(), entity_uid);
        entities.push(CedarEntity::new_no_attrs(entity_uid(at), [parent].into()));
    }
    for user in &data.users {
        let mut scopes: HashMap<String, Vec<EntityUid>> = HashMap::new();
        if user.status == UserStatus::Active {
            for grant in &user.grants {
                let scope = match grant.scope {
                    GrantScope::All => organization.clone(),
                    GrantScope::Entity(at) => entity_uid(at),
                };
                scopes
                    .entry(data.roles[grant.role].id.to_string())
                    .or_default()
                    .push(scope);
            }
        }
        let attributes = scopes
            .into_iter()
            .map(|(role, scopes)| {
                let set = scopes.into_iter().map(RestrictedExpression::new_entity_uid);
                (role, RestrictedExpression::new_set(set))
            })
            .collect();
        entities.push(
            CedarEntity::new(
                uid("User", &user.id.to_string()),
                attributes,
                Default::default(),
            )
            .expect("a valid user entity"),
        );
    }
    let entities = Entities::from_entities(entities, None).expect("valid entities");
    let requests = probes
        .iter()
        .map(|probe| {
            let resource = match probe.target {
                ProbeTarget::Organization => organization.clone(),
                ProbeTarget::Entity(at) => entity_uid(at),
                ProbeTarget::Unknown(id) => uid("Entity", &id.to_string()),
            };
            Request::new(
                uid("User", &data.users[probe.user].id.to_string()),
                uid(
                    "Action",
                    data.catalogue.permissions()[probe.permission].key.as_str(),
                ),
                resource,
                Context::empty(),
                None,
            )
            .expect("a valid request")
        })
        .collect();
    Cedar {
        authorizer: Authorizer::new(),
        policies,
        entities,
        requests,
    }
}

const CASBIN_MODEL: &str = "
[request_definition]
r = sub, dom, act
[policy_definition]
p = sub, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && r.act == p.act
";

/// RBAC with domains, casbin's own model: a policy per (role, permission), and a user holds a role
/// in a domain. Domains are flat, so a grant is written out for every entity it covers: full access
/// on the organisation and every entity, a legal entity's on its segments too.
async fn casbin(data: &Dataset, probes: &[Probe]) -> Casbin {
    let model = DefaultModel::from_str(CASBIN_MODEL)
        .await
        .expect("the model parses");
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .expect("an enforcer");
    let policies: Vec<Vec<String>> = data
        .roles
        .iter()
        .flat_map(|role| {
            role.permissions.iter().map(|at| {
                vec![
                    role.id.to_string(),
                    data.catalogue.permissions()[*at].key.to_string(),
                ]
            })
        })
        .collect();
    enforcer
        .add_policies(policies)
        .await
        .expect("policies added");
    let mut links = Vec::new();
    for user in data
        .users
        .iter()
        .filter(|user| user.status == UserStatus::Active)
    {
        for grant in &user.grants {
            let role = data.roles[grant.role].id.to_string();
            let domains: Vec<String> = match grant.scope {
                GrantScope::All => std::iter::once("org".to_owned())
                    .chain(data.entities.iter().map(|entity| entity.id.to_string()))
                    .collect(),
                GrantScope::Entity(at) => data
                    .entities
                    .iter()
                    .enumerate()
                    .filter(|(index, entity)| *index == at || entity.parent == Some(at))
                    .map(|(_, entity)| entity.id.to_string())
                    .collect(),
            };
            for domain in domains {
                links.push(vec![user.id.to_string(), role.clone(), domain]);
            }
        }
    }
    links.sort();
    links.dedup();
    enforcer
        .add_grouping_policies(links)
        .await
        .expect("role links added");
    let requests = probes
        .iter()
        .map(|probe| {
            let domain = match probe.target {
                ProbeTarget::Organization => "org".to_owned(),
                ProbeTarget::Entity(at) => data.entities[at].id.to_string(),
                ProbeTarget::Unknown(id) => id.to_string(),
            };
            (
                data.users[probe.user].id.to_string(),
                domain,
                data.catalogue.permissions()[probe.permission]
                    .key
                    .to_string(),
            )
        })
        .collect();
    Casbin { enforcer, requests }
}

impl Engines {
    fn build() -> Self {
        let data = Dataset::generate(SEED);
        let probes = data.probes(SEED + 1, PROBES);
        let subjects: Vec<Subject> = (0..data.users.len()).map(|at| data.subject(at)).collect();
        let tree = data.tree();
        let compiled_tree = Arc::new(CompiledTree::new(tree.clone()));
        let compiled: Vec<_> = subjects
            .iter()
            .map(|subject| {
                Arc::new(CompiledSubject::compile(
                    Some(subject.clone()),
                    compiled_tree.clone(),
                    &data.catalogue,
                ))
            })
            .collect();
        let by_user = subjects
            .iter()
            .map(|subject| subject.user)
            .zip(compiled.iter().cloned())
            .collect();
        let cedar = cedar(&data, &probes);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let casbin = runtime.block_on(casbin(&data, &probes));
        Self {
            data,
            probes,
            subjects,
            tree,
            compiled,
            by_user,
            cedar,
            casbin,
        }
    }

    fn target(&self, probe: &Probe) -> Target {
        self.data.target(probe.target)
    }

    fn key(&self, probe: &Probe) -> &PermissionKey {
        &self.data.catalogue.permissions()[probe.permission].key
    }

    fn decide(&self, at: usize) -> bool {
        let probe = &self.probes[at];
        let subject = &self.subjects[probe.user];
        decision::decide(
            Some(subject),
            self.key(probe),
            self.target(probe),
            &self.tree,
        )
        .allowed
    }

    /// The lookup alone: the subject in hand, the permission's catalogue position known.
    fn compiled(&self, at: usize) -> bool {
        let probe = &self.probes[at];
        self.compiled[probe.user].allows(self.target(probe), probe.permission)
    }

    /// What `warden-authz` does per check once the subject is cached: find the subject by user id,
    /// the position by key, then look up.
    fn compiled_from_ids(&self, at: usize) -> bool {
        let probe = &self.probes[at];
        let user = self.data.users[probe.user].id;
        let position = self.data.catalogue.position(self.key(probe));
        match (self.by_user.get(&user), position) {
            (Some(subject), Some(position)) => subject.allows(self.target(probe), position),
            _ => false,
        }
    }

    fn cedar(&self, at: usize) -> bool {
        let response = self.cedar.authorizer.is_authorized(
            &self.cedar.requests[at],
            &self.cedar.policies,
            &self.cedar.entities,
        );
        response.decision() == cedar_policy::Decision::Allow
    }

    fn casbin(&self, at: usize) -> bool {
        let (user, domain, action) = &self.casbin.requests[at];
        self.casbin
            .enforcer
            .enforce((user, domain, action))
            .expect("casbin evaluates")
    }

    /// Every engine answers as `decide` on the sample; both answers are common in the mix.
    fn assert_agree(&self) {
        let mut allowed = 0;
        for at in 0..SAMPLE {
            let expected = self.decide(at);
            allowed += usize::from(expected);
            let answers = [
                ("compiled", self.compiled(at)),
                ("compiled from ids", self.compiled_from_ids(at)),
                ("cedar", self.cedar(at)),
                ("casbin", self.casbin(at)),
            ];
            for (engine, answer) in answers {
                assert_eq!(
                    answer, expected,
                    "{engine} disagrees with decide on {:?}",
                    self.probes[at]
                );
            }
        }
        assert!(
            (SAMPLE / 5..SAMPLE * 4 / 5).contains(&allowed),
            "a mix of answers: {allowed} of {SAMPLE} allowed"
        );
        eprintln!("all engines agree on {SAMPLE} checks; {allowed} allowed");
    }
}

/// One engine's answer to the check at an index of the mix.
type Engine = fn(&Engines, usize) -> bool;

fn decisions(c: &mut Criterion) {
    let engines = Engines::build();
    engines.assert_agree();
    let mut group = c.benchmark_group("decision");
    let engine_fns: [(&str, Engine); 5] = [
        ("compiled", Engines::compiled),
        ("compiled_from_ids", Engines::compiled_from_ids),
        ("decide", Engines::decide),
        ("cedar", Engines::cedar),
        ("casbin", Engines::casbin),
    ];
    for (name, engine) in engine_fns {
        let mut at = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                at = (at + 1) % PROBES;
                black_box(engine(&engines, black_box(at)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
