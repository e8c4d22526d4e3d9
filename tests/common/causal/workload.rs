//! The publisher side of the causal tests: a seeded causal workload through the real publisher
//! (concurrent tasks, causal contexts of a few transactions, tracked reads, rollbacks), and the
//! ground truth of what each write depended on ([`Truth`]).

use std::sync::Arc;

use promiscuous::Tracked;
use promiscuous_test::history::SplitMix64;
use sea_orm::{
    ActiveModelTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel,
    ModelTrait, Set, TransactionTrait,
};

use super::models::publisher::{friendship, photo};
use crate::common::user;

pub fn pick<T: Clone>(rng: &mut SplitMix64, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.below(items.len())].clone())
}

/// The primary key of the workload's models.
pub trait Id {
    fn id(&self) -> i32;
}

impl Id for user::Model {
    fn id(&self) -> i32 {
        self.id
    }
}

impl Id for friendship::Model {
    fn id(&self) -> i32 {
        self.id
    }
}

impl Id for photo::Model {
    fn id(&self) -> i32 {
        self.id
    }
}

/// Reads `m` in the transaction, a dependency of the context's next writes: transparently (a
/// query through the tracked transaction) or explicitly (`track_read`), at random.
pub async fn reread<E>(txn: &Tracked<DatabaseTransaction>, rng: &mut SplitMix64, m: &E::Model)
where
    E: EntityTrait,
    E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = i32>,
    E::Model: promiscuous::Published + Id,
{
    if rng.below(2) == 0 {
        promiscuous::track_read(m, txn).await.unwrap();
    } else {
        E::find_by_id(m.id()).one(txn).await.unwrap();
    }
}

/// Whether a server refused a write because of a concurrent transaction: the row it updates
/// was deleted by another (SeaORM's `RecordNotUpdated`), a deadlock (PostgreSQL's "deadlock
/// detected", MariaDB's "Deadlock found") or a lock wait timeout (MariaDB), told by the
/// error's text as the CLI's initial sync tells its retryable batches. Such a transaction is
/// rolled back and publishes nothing; any other error fails the test.
pub fn refused_by_a_concurrent_writer(e: &DbErr) -> bool {
    let text = e.to_string().to_lowercase();
    matches!(e, DbErr::RecordNotUpdated)
        || ["deadlock", "lock wait timeout"]
            .iter()
            .any(|m| text.contains(m))
}

/// One transaction of a publisher task: a few reads (tracked), then one write. Users are never
/// destroyed, so a photo's owner always exists. Returns how it ended: committed, rolled back
/// by the workload, or refused because of a concurrent writer (see
/// [`refused_by_a_concurrent_writer`]).
pub async fn one_transaction(db: &DatabaseConnection, rng: &mut SplitMix64, n: usize) -> Outcome {
    let txn = promiscuous::tracked(db.begin().await.unwrap());
    // Listing is not reading for causality: through the plain transaction.
    let users = user::Entity::find().all(txn.inner()).await.unwrap();
    let friendships = friendship::Entity::find().all(txn.inner()).await.unwrap();
    let photos = photo::Entity::find().all(txn.inner()).await.unwrap();
    for _ in 0..rng.below(3) {
        match rng.below(3) {
            0 => {
                if let Some(u) = pick(rng, &users) {
                    reread::<user::Entity>(&txn, rng, &u).await;
                }
            }
            1 => {
                if let Some(f) = pick(rng, &friendships) {
                    reread::<friendship::Entity>(&txn, rng, &f).await;
                }
            }
            _ => {
                if let Some(p) = pick(rng, &photos) {
                    reread::<photo::Entity>(&txn, rng, &p).await;
                }
            }
        }
    }
    let written: Result<(), DbErr> = match rng.below(7) {
        1 if !users.is_empty() => {
            let u = pick(rng, &users).unwrap();
            reread::<user::Entity>(&txn, rng, &u).await;
            let mut am = u.into_active_model();
            am.name = Set(format!("name-{n}"));
            am.update(&txn).await.map(drop)
        }
        2 if users.len() >= 2 => {
            let (a, b) = (pick(rng, &users).unwrap(), pick(rng, &users).unwrap());
            reread::<user::Entity>(&txn, rng, &a).await;
            reread::<user::Entity>(&txn, rng, &b).await;
            friendship::ActiveModel {
                user_id: Set(a.id),
                friend_id: Set(b.id),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map(drop)
        }
        3 if !friendships.is_empty() => pick(rng, &friendships)
            .unwrap()
            .delete(&txn)
            .await
            .map(drop),
        4 | 5 if !users.is_empty() => {
            let owner = pick(rng, &users).unwrap();
            reread::<user::Entity>(&txn, rng, &owner).await;
            photo::ActiveModel {
                user_id: Set(owner.id),
                caption: Set(format!("photo-{n}")),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map(drop)
        }
        6 if !photos.is_empty() => {
            let p = pick(rng, &photos).unwrap();
            if rng.below(3) == 0 {
                p.delete(&txn).await.map(drop)
            } else {
                let mut am = p.into_active_model();
                am.caption = Set(format!("caption-{n}"));
                am.update(&txn).await.map(drop)
            }
        }
        _ => user::ActiveModel {
            name: Set(format!("user-{n}")),
            email: Set(format!("u{n}@example.org")),
            password: Set("pw".into()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map(drop),
    };
    match written {
        Err(e) if refused_by_a_concurrent_writer(&e) => {
            txn.rollback().await.unwrap();
            Outcome::Refused
        }
        Err(e) => panic!("transaction {n}: {e}"),
        Ok(()) if rng.below(12) == 0 => {
            txn.rollback().await.unwrap();
            Outcome::RolledBack
        }
        Ok(()) => {
            txn.commit().await.unwrap();
            Outcome::Committed
        }
    }
}

/// How one of the workload's transactions ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// Rolled back by the workload (one in twelve).
    RolledBack,
    /// Its write was refused because of a concurrent transaction, and it was rolled back.
    Refused,
}

/// What each write of a workload depended on before the publisher reduced it (the ground
/// truth of causal order), and whether the workload asks for a deliberately wrong reduction.
#[derive(Clone, Default)]
pub struct Truth {
    pub writes: Arc<std::sync::Mutex<Vec<promiscuous::context::WriteRecord>>>,
    pub unsound_reduction: bool,
}

impl Truth {
    pub fn options(&self, user: i64) -> promiscuous::context::TestOptions {
        let writes = self.writes.clone();
        promiscuous::context::TestOptions {
            current_user_id: Some(user.into()),
            observer: Some(Arc::new(move |w| writes.lock().unwrap().push(w))),
            unsound_reduction: self.unsound_reduction,
        }
    }

    /// `published` with each message's read dependencies replaced by everything its writes
    /// depended on (checkpoint messages keep theirs).
    pub fn of(&self, published: &[promiscuous::Message]) -> Vec<promiscuous::Message> {
        let writes = self.writes.lock().unwrap();
        published
            .iter()
            .map(|m| {
                let mut m = m.clone();
                let mut reads: std::collections::BTreeMap<String, u64> = Default::default();
                let mut found = false;
                for w in writes.iter().filter(|w| w.message == m.id) {
                    found = true;
                    for d in &w.dependencies {
                        let v = reads.entry(d.key.clone()).or_insert(0);
                        *v = (*v).max(d.version);
                    }
                }
                if found {
                    for op in &m.operations {
                        reads.remove(&op.key());
                    }
                    m.dependencies.read = reads
                        .into_iter()
                        .map(|(key, version)| promiscuous::Dependency { key, version })
                        .collect();
                }
                m
            })
            .collect()
    }
}

/// `tasks` publisher tasks run `transactions` transactions each, concurrently, in causal
/// contexts of 1 to 4 transactions.
pub async fn causal_workload(
    db: &DatabaseConnection,
    seed: u64,
    tasks: usize,
    transactions: usize,
) -> Tally {
    causal_workload_with(db, seed, tasks, transactions, &Truth::default()).await
}

/// How the transactions of a workload ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub committed: usize,
    pub rolled_back: usize,
    pub refused: usize,
}

impl Tally {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Committed => self.committed += 1,
            Outcome::RolledBack => self.rolled_back += 1,
            Outcome::Refused => self.refused += 1,
        }
    }

    fn add(&mut self, other: Tally) {
        self.committed += other.committed;
        self.rolled_back += other.rolled_back;
        self.refused += other.refused;
    }
}

/// [`causal_workload`], recording the ground truth in `truth`.
pub async fn causal_workload_with(
    db: &DatabaseConnection,
    seed: u64,
    tasks: usize,
    transactions: usize,
    truth: &Truth,
) -> Tally {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let db = db.clone();
            let truth = truth.clone();
            tokio::spawn(async move {
                let mut rng = SplitMix64::new(seed.wrapping_mul(31).wrapping_add(t as u64));
                let (mut done, mut tally) = (0, Tally::default());
                while done < transactions {
                    let len = (1 + rng.below(4)).min(transactions - done);
                    let start = done;
                    let db = db.clone();
                    (rng, tally) = promiscuous::context::context_for_tests(
                        truth.options(t as i64),
                        async move {
                            for i in 0..len {
                                let n = t * 10_000 + start + i;
                                tally.count(one_transaction(&db, &mut rng, n).await);
                            }
                            (rng, tally)
                        },
                    )
                    .await;
                    done += len;
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        tally.add(h.await.unwrap());
    }
    tally
}

/// Rounds of [`causal_workload`] (`tasks` tasks of `transactions` transactions each, seeds
/// `seed * 1000 + round`) written in the background, `pause` apart, until [`Writing::stop`].
#[allow(dead_code)]
pub struct Writing {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

#[allow(dead_code)]
impl Writing {
    pub fn start(
        db: &DatabaseConnection,
        seed: u64,
        tasks: usize,
        transactions: usize,
        pause: std::time::Duration,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (db, stopped) = (db.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut round = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                causal_workload(&db, seed * 1_000 + round, tasks, transactions).await;
                round += 1;
                tokio::time::sleep(pause).await;
            }
            round
        });
        Writing { stop, task }
    }

    /// Stops after the round under way; returns how many rounds were written.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}
