//! `--probe`: the publisher's write path alone, no relay: bare SeaORM inserts against
//! published ones, at 1 and at 10 writes per transaction.

use std::time::{Duration, Instant};

use promiscuous::BoxError;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, Set, TransactionTrait};

use crate::models::{member, user};
use crate::pipeline::{TempDir, create, sqlite};
use crate::{Args, grouped};

/// The two sides of the probe.
#[derive(Clone, Copy)]
enum Side {
    /// A plain SeaORM insert of an unpublished model (`member`).
    Bare,
    /// An insert of a published model (`user`): hooks, write guard, outbox.
    Published,
}

/// `transactions` transactions of `per_tx` inserts on one side; returns the time per
/// transaction. `next` numbers the rows (members' `user_id` is unique).
async fn probe_round(
    db: &DatabaseConnection,
    side: Side,
    transactions: usize,
    per_tx: usize,
    next: &mut usize,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    for _ in 0..transactions {
        let txn = db.begin().await?;
        for _ in 0..per_tx {
            let i = *next;
            *next += 1;
            match side {
                Side::Bare => {
                    member::ActiveModel {
                        user_id: Set(i as i32),
                        name: Set(format!("m{i}")),
                        email: Set(format!("member{i}@bench.example")),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await?;
                }
                Side::Published => {
                    user::ActiveModel {
                        name: Set(format!("u{i}")),
                        email: Set(format!("user{i}@bench.example")),
                        ..Default::default()
                    }
                    .insert(&txn)
                    .await?;
                }
            }
        }
        txn.commit().await?;
    }
    Ok(started.elapsed() / transactions as u32)
}

/// The median (and the range) of one case's rounds, in µs per transaction.
fn spread(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let m = times.len() / 2;
    let median = if times.len().is_multiple_of(2) {
        (us(times[m - 1]) + us(times[m])) / 2.0
    } else {
        us(times[m])
    };
    (median, us(times[0]), us(times[times.len() - 1]))
}

/// The publisher's write path alone, no relay running: bare SeaORM inserts of an unpublished
/// table (`member`) against published inserts (`user`, through the hooks), at 1 and at 10
/// writes per transaction, on one SQLite file. The four cases run in alternating rounds (the
/// side that goes first changes every round), so that machine noise hits them alike; each
/// case's median round is reported. Returns published ÷ bare time per transaction at 1 and
/// at 10 writes per transaction.
pub(crate) async fn probe(args: &Args) -> Result<[f64; 2], BoxError> {
    let dir =
        TempDir(std::env::temp_dir().join(format!("promiscuous-probe-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0)?;
    let db = sqlite(&dir.0.join("probe.db"), args.pool).await?;
    create(&db, user::Entity).await?;
    create(&db, member::Entity).await?;
    promiscuous::pipeline::schema::setup_publisher(&db).await?;
    promiscuous::guard::install(&db).await?;
    let rounds = args.probe_rounds as usize;
    // Writes per case and round, a multiple of 10.
    let writes = (args.ops.min(5000) / rounds / 10).max(1) * 10;
    const PER_TX: [usize; 2] = [1, 10];
    let mut next = [0usize; 2];
    // Warm-up (not measured): statements prepared, pages cached, on both sides.
    for per_tx in PER_TX {
        for (k, side) in [Side::Bare, Side::Published].into_iter().enumerate() {
            probe_round(&db, side, 10, per_tx, &mut next[k]).await?;
        }
    }
    // times[case][side]
    let mut times: [[Vec<Duration>; 2]; 2] = Default::default();
    for round in 0..rounds {
        let order = if round.is_multiple_of(2) {
            [(0, Side::Bare), (1, Side::Published)]
        } else {
            [(1, Side::Published), (0, Side::Bare)]
        };
        for (case, per_tx) in PER_TX.into_iter().enumerate() {
            for (k, side) in order {
                let t = probe_round(&db, side, writes / per_tx, per_tx, &mut next[k]).await?;
                times[case][k].push(t);
            }
        }
    }
    let started = Instant::now();
    for _ in 0..writes {
        db.execute_unprepared("SELECT 1").await?;
    }
    let statement = started.elapsed() / writes as u32;
    println!(
        "probe: SQLite file (WAL, synchronous=NORMAL, pool {}), no relay; {rounds} alternating \
         rounds of {writes} writes per case, median round (min – max); one statement {:.0} µs",
        args.pool,
        statement.as_secs_f64() * 1e6
    );
    let mut overhead = [0.0; 2];
    for (case, per_tx) in PER_TX.into_iter().enumerate() {
        let [bare, published] = &mut times[case];
        let (bare, bare_min, bare_max) = spread(bare);
        let (published, published_min, published_max) = spread(published);
        overhead[case] = published / bare;
        println!(
            "probe {per_tx:>2} write(s)/tx: bare {bare:.0} µs/tx ({bare_min:.0} – {bare_max:.0}, \
             {} writes/s); published {published:.0} µs/tx ({published_min:.0} – \
             {published_max:.0}, {} writes/s)",
            grouped(per_tx as f64 * 1e6 / bare),
            grouped(per_tx as f64 * 1e6 / published)
        );
    }
    Ok(overhead)
}
