//! A batch applied in one transaction (the subscriber's batches): the versions of the whole
//! batch claimed in one statement, and the rows it writes read in one query, take the same
//! effect as applying its messages one by one: new versions applied, stale and duplicate ones
//! skipped (callbacks included), a message writing one instance twice applied in order, and a
//! redelivered batch without a second effect. On SQLite and on PostgreSQL.

mod common;

use common::{events_of, member};
use promiscuous::pipeline::{Applier, SeaOrmApplier, schema};
use promiscuous::{InProcess, Message, OperationKind};
use promiscuous_test::MockPublisher;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;

use common::sql_servers::fresh_database;

const USER: &str = "crowdtap/user";

async fn name_of(db: &DatabaseConnection, id: i32) -> Option<String> {
    member::Entity::find()
        .filter(member::Column::CrowdtapId.eq(id))
        .one(db)
        .await
        .unwrap()
        .map(|m| m.name)
}

/// The instance key of `id`, from the messages that wrote it.
fn mock_key(batch: &[Message], before: &[Message], id: i32) -> String {
    batch
        .iter()
        .chain(before)
        .flat_map(|m| &m.operations)
        .find(|op| op.id == json!(id))
        .map(|op| op.key())
        .expect("a message wrote it")
}

/// Runs the scenario on `db` (a fresh database with the members table); names carry `tag`,
/// so that the callbacks' log tells the two databases apart.
async fn batch_matches_one_by_one(db: DatabaseConnection, tag: &str) {
    schema::setup_subscriber(&db).await.unwrap();
    let applier = SeaOrmApplier::new(db.clone()).subscribe::<member::Model>();
    let mut mock = MockPublisher::new("crowdtap", InProcess::new());
    let name = |id: i32, step: &str| format!("{tag}-{id}-{step}");
    let mut message = |id: i32, kind: OperationKind, step: &str| -> Message {
        let attributes = (kind != OperationKind::Destroy)
            .then(|| json!({"name": name(id, step), "email": format!("{step}@t")}));
        mock.message(USER, json!(id), kind, attributes)
    };

    // Before the batch, one by one: 1 and 2 created, 2 updated, 5 created.
    let create_2 = message(2, OperationKind::Create, "a");
    let before = [
        message(1, OperationKind::Create, "a"),
        create_2.clone(),
        message(2, OperationKind::Update, "b"),
        message(5, OperationKind::Create, "a"),
    ];
    for m in &before {
        assert_eq!(applier.apply(m).await.unwrap().applied, 1);
    }

    // The batch: an update of a row that exists (1), a stale redelivery (2's create, older
    // than its update), a new row (3), one message writing 4 twice (create then update), a
    // destroy (5), and a row that does not exist updated (6: created by the upsert).
    let mut twice = message(4, OperationKind::Create, "a");
    let second = message(4, OperationKind::Update, "b");
    twice.operations.extend(second.operations);
    let batch = [
        message(1, OperationKind::Update, "b"),
        create_2,
        message(3, OperationKind::Create, "a"),
        twice,
        message(5, OperationKind::Destroy, ""),
        message(6, OperationKind::Update, "b"),
    ];
    let refs: Vec<&Message> = batch.iter().collect();
    let outcomes = applier
        .apply_batch(&refs)
        .await
        .expect("the SeaORM applier applies batches")
        .unwrap();
    let counts: Vec<(usize, usize)> = outcomes.iter().map(|o| (o.applied, o.skipped)).collect();
    assert_eq!(
        counts,
        vec![(1, 0), (0, 1), (1, 0), (2, 0), (1, 0), (1, 0)],
        "{tag}: per message (applied, skipped)"
    );
    assert_eq!(name_of(&db, 1).await, Some(name(1, "b")));
    assert_eq!(name_of(&db, 2).await, Some(name(2, "b")), "stale skipped");
    assert_eq!(name_of(&db, 3).await, Some(name(3, "a")));
    assert_eq!(name_of(&db, 4).await, Some(name(4, "b")), "in order");
    assert_eq!(name_of(&db, 5).await, None, "destroyed");
    assert_eq!(name_of(&db, 6).await, Some(name(6, "b")));
    let key = |id: i32| mock_key(&batch, &before, id);
    for (id, version) in [(1, 2), (2, 2), (3, 1), (4, 2), (5, 2), (6, 1)] {
        let applied = applier.applied_version(&key(id)).await.unwrap();
        assert_eq!(applied, Some(version), "{tag}: applied version of {id}");
    }

    // Redelivered as a whole: no second effect, no second callback.
    let outcomes = applier.apply_batch(&refs).await.unwrap().unwrap();
    let applied: usize = outcomes.iter().map(|o| o.applied).sum();
    let skipped: usize = outcomes.iter().map(|o| o.skipped).sum();
    assert_eq!((applied, skipped), (0, 7), "{tag}: redelivered batch");
    // One callback per applied operation: 1 created then updated, 2 created and updated
    // before the batch (its stale create ran none), 3 created, 4 created then updated.
    for (id, callbacks) in [(1, 2), (2, 2), (3, 1), (4, 2)] {
        let ran = events_of(&format!("{tag}-{id}-"));
        assert_eq!(ran.len(), callbacks, "{tag}: callbacks of {id}: {ran:?}");
    }
}

#[tokio::test]
async fn a_batch_takes_the_effect_of_its_messages_one_by_one_on_sqlite() {
    batch_matches_one_by_one(common::subscriber_db().await, "BatchLite").await;
}

on_both_servers! {
    a_batch_takes_the_effect_of_its_messages_one_by_one;
}

async fn a_batch_takes_the_effect_of_its_messages_one_by_one(url: &str) {
    let db = fresh_database(url, "applier_batches").await;
    promiscuous_test::create_table(&db, member::Entity)
        .await
        .unwrap();
    // The callbacks' log is the process's: a tag of this server's own.
    let tag = format!("Batch-{}", url.split(':').next().unwrap());
    batch_matches_one_by_one(db, &tag).await;
}
