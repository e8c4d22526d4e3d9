//! The seeded workload generator: deterministic messages with correct per-instance versions and
//! read/write dependencies, to feed the subscriber in randomized tests checked by
//! [`History::check`](super::History::check).

use std::collections::BTreeMap;

use promiscuous_core::message::{PROTOCOL_VERSION, instance_key};
use promiscuous_core::{Dependencies, Dependency, Message, Operation, OperationKind};
use serde_json::{Map, Value};

use crate::rng::SplitMix64;

/// Endpoints used by [`random_workload`]; instance `i` lives at `WORKLOAD_ENDPOINTS[i % 2]` with
/// id `i`.
pub const WORKLOAD_ENDPOINTS: [&str; 2] = ["crowdtap/user", "crowdtap/friendship"];

/// A deterministic workload of `writes` messages (one operation each) in global commit order:
/// `publishers` contexts take turns at random, each reading 0–2 random existing instances among
/// `instances` and then writing one (create on its first write, update afterwards). Each message
/// carries the right per-instance version, its write dependency, and as read dependencies every
/// instance its context read or wrote since its previous write (including that write), at the
/// version seen. Message ids are `"p{publisher}-{n}"`.
pub fn random_workload(
    seed: u64,
    publishers: usize,
    instances: usize,
    writes: usize,
) -> Vec<Message> {
    assert!(
        publishers > 0 && instances > 0,
        "need publishers and instances"
    );
    let mut rng = SplitMix64::new(seed);
    let mut versions = vec![0u64; instances];
    // Per context: instance -> version seen since the context's last write.
    let mut contexts: Vec<BTreeMap<usize, u64>> = vec![BTreeMap::new(); publishers];
    let mut messages = Vec::with_capacity(writes);
    for n in 0..writes {
        let p = rng.below(publishers);
        for _ in 0..rng.below(3) {
            let i = rng.below(instances);
            if versions[i] > 0 {
                contexts[p].insert(i, versions[i]);
            }
        }
        let i = rng.below(instances);
        versions[i] += 1;
        let version = versions[i];
        let endpoint = WORKLOAD_ENDPOINTS[i % WORKLOAD_ENDPOINTS.len()];
        let id = Value::from(i as u64);
        let key = instance_key(endpoint, &id);
        let read = contexts[p]
            .iter()
            .map(|(&j, &v)| Dependency {
                key: instance_key(
                    WORKLOAD_ENDPOINTS[j % WORKLOAD_ENDPOINTS.len()],
                    &Value::from(j as u64),
                ),
                version: v,
            })
            .collect();
        let mut attributes = Map::new();
        attributes.insert("n".into(), Value::from(n as u64));
        messages.push(Message {
            protocol: PROTOCOL_VERSION,
            app: "crowdtap".into(),
            id: format!("p{p}-{n}"),
            timestamp: n as i64,
            host: format!("publisher-{p}"),
            current_user_id: None,
            dependencies: Dependencies {
                read,
                write: vec![Dependency {
                    key: key.clone(),
                    version,
                }],
            },
            operations: vec![Operation {
                endpoint: endpoint.into(),
                types: vec![crate::type_name(endpoint)],
                id,
                operation: if version == 1 {
                    OperationKind::Create
                } else {
                    OperationKind::Update
                },
                version,
                attributes: Some(attributes),
                changes: None,
                sync: false,
            }],
        });
        contexts[p].clear();
        contexts[p].insert(i, version);
    }
    messages
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::history::checker::{History, Violation, describe};

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn random_workload_is_deterministic_and_well_formed() {
        let a = random_workload(42, 3, 8, 200);
        assert_eq!(a, random_workload(42, 3, 8, 200));
        assert_ne!(a, random_workload(43, 3, 8, 200));
        assert_eq!(a.len(), 200);
        let mut versions: HashMap<String, u64> = HashMap::new();
        for m in &a {
            Message::decode(&m.encode()).unwrap();
            let op = &m.operations[0];
            let v = versions.entry(op.key()).or_insert(0);
            *v += 1;
            assert_eq!(op.version, *v);
            assert_eq!(
                m.dependencies.write,
                vec![Dependency {
                    key: op.key(),
                    version: op.version
                }]
            );
            for d in &m.dependencies.read {
                assert!(d.version <= versions[&d.key], "{} reads the future", m.id);
            }
        }
        assert!(a.iter().any(|m| m.dependencies.read.len() > 1));
    }

    #[test]
    fn random_workload_applied_in_publish_order_passes() {
        for seed in 0..20 {
            let messages = random_workload(seed, 4, 10, 150);
            let mut h = History::new();
            for (n, m) in messages.iter().enumerate() {
                h.published(m);
                h.applied_message(n % 3, m);
            }
            let report = h
                .check(all)
                .unwrap_or_else(|v| panic!("seed {seed}:\n{}", describe(&v)));
            assert_eq!(report.published_ops, 150);
            assert_eq!(report.applied_ops, 150);
        }
    }

    #[test]
    fn random_causally_invalid_permutation_fails() {
        for seed in 0..20 {
            let messages = random_workload(seed, 4, 10, 150);
            let producer: HashMap<(String, u64), usize> = messages
                .iter()
                .enumerate()
                .map(|(n, m)| ((m.operations[0].key(), m.operations[0].version), n))
                .collect();
            // Pick a random message that depends on an earlier one, and swap the two.
            let mut rng = SplitMix64::new(seed ^ 0xdead_beef);
            let (j, i) = loop {
                let j = rng.below(messages.len());
                let m = &messages[j];
                let op = &m.operations[0];
                let deps: Vec<usize> = m
                    .dependencies
                    .read
                    .iter()
                    .map(|d| (d.key.clone(), d.version))
                    .chain((op.version > 1).then(|| (op.key(), op.version - 1)))
                    .filter_map(|d| producer.get(&d).copied())
                    .filter(|&i| i < j)
                    .collect();
                if !deps.is_empty() {
                    break (j, deps[rng.below(deps.len())]);
                }
            };
            let mut order: Vec<usize> = (0..messages.len()).collect();
            order.swap(i, j);
            let mut h = History::new();
            for m in &messages {
                h.published(m);
            }
            for (n, &k) in order.iter().enumerate() {
                h.applied_message(n % 2, &messages[k]);
            }
            let v = h
                .check(all)
                .expect_err(&format!("seed {seed}: swapping {i} and {j} went unnoticed"));
            let dependent = &messages[j].id;
            assert!(
                v.iter().any(|v| match v {
                    Violation::Causal { event, .. } => &event.message == dependent,
                    Violation::OutOfOrder { later, .. } => later.message == messages[i].id,
                    _ => false,
                }),
                "seed {seed}:\n{}",
                describe(&v)
            );
        }
    }
}
