//! `--board`: the end-to-end run without and with a dashboard's shared state (a
//! `RedisBoard` for the relay's and the subscriber's reports, a `Feed` nobody listens to).

use promiscuous::BoxError;

use crate::pipeline::Store;
use crate::throughput::{Load, throughput};
use crate::{Args, grouped, median};

/// A dashboard's shared state off vs. on: `--board-rounds` rounds of the end-to-end run (2),
/// each without it, then with it (the other way round with `--board-on-first`), on fresh
/// files, queue and exchange; each round's ops/s and on ÷ off, then the medians.
pub(crate) async fn board(amqp: &str, redis: &str, args: &Args) -> Result<(), BoxError> {
    let load = Load {
        writers: args.writers,
        ops_per_tx: args.ops_per_tx as usize,
        store: Store::Sqlite,
    };
    let rounds = args.board_rounds as usize;
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let order = if args.board_on_first {
            [true, false]
        } else {
            [false, true]
        };
        // ops/s [off, on]
        let mut ab = [0.0; 2];
        for shared in order {
            let run = format!("board-{}-{round}", if shared { "on" } else { "off" });
            ab[usize::from(shared)] = throughput(amqp, redis, args, load, &run, 0, shared).await?;
        }
        let [a, b] = ab;
        println!(
            "board round {round}/{rounds} ({} first): off {} ops/s, on {} ops/s, on/off {:.3}",
            if args.board_on_first { "on" } else { "off" },
            grouped(a),
            grouped(b),
            b / a
        );
        off.push(a);
        on.push(b);
        ratios.push(b / a);
    }
    let (off_median, off_min, off_max) = median(&off);
    let (on_median, on_min, on_max) = median(&on);
    let (ratio, ratio_min, ratio_max) = median(&ratios);
    println!(
        "board off (no shared board, no feed): median {} ops/s ({} – {}) over {rounds} round(s)",
        grouped(off_median),
        grouped(off_min),
        grouped(off_max)
    );
    println!(
        "board on (RedisBoard on relay and subscriber, feed on subscriber): median {} ops/s \
         ({} – {})",
        grouped(on_median),
        grouped(on_min),
        grouped(on_max)
    );
    println!(
        "board-ratio {ratio:.3} (median of the rounds' on/off, {ratio_min:.3} – {ratio_max:.3}; \
         ratio of the medians {:.3})",
        on_median / off_median
    );
    Ok(())
}
