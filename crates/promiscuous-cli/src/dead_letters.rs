//! `dead-letters list | show ID | replay ID|--all | drop ID|--all`: the message hospital.

use promiscuous_core::message::Message;
use promiscuous_sea_orm::subscriber::dead_letters::{
    self, DeadLetterError, DeadLetterRow, Replayed, readable_payload as payload,
};

use crate::env::{Env, Out};
use crate::error::CliError;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum DeadLetterCommand {
    /// List the dead letters, oldest first.
    List,
    /// Show one dead letter: its error and its payload.
    Show {
        /// The dead letter's id (see `list`).
        id: i64,
    },
    /// Apply dead letters again (once the cause is fixed); those applied are deleted, those
    /// still failing stay with their new error. Each is admitted from its owner again, with
    /// the routing key (and user) recorded with it.
    Replay {
        #[command(flatten)]
        which: Which,
        /// Admit only messages whose recorded broker user is their app, as `subscribe
        /// --require-user-id` does.
        #[arg(long)]
        require_user_id: bool,
    },
    /// Delete dead letters without applying them.
    Drop(Which),
}

#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct Which {
    /// The dead letter's id (see `list`).
    id: Option<i64>,
    /// Every dead letter.
    #[arg(long)]
    all: bool,
}

fn store_error(doing: &str, e: impl std::fmt::Display) -> CliError {
    CliError::failed(format!("{doing}: {e}"))
}

fn not_found(e: DeadLetterError) -> CliError {
    match e {
        DeadLetterError::NotFound(id) => CliError::failed(format!(
            "no dead letter with id {id} (see `dead-letters list`)"
        )),
        e => CliError::failed(e.to_string()),
    }
}

/// The first line of `text`, at most `max` characters.
fn headline(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

fn when(at_ms: i64) -> String {
    let secs = at_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm), UTC.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn list(letters: &[DeadLetterRow], out: &mut Out) {
    if letters.is_empty() {
        out.line("no dead letters");
        return;
    }
    out.line("ID\tAT\tQUEUE\tROUTING KEY\tATTEMPTS\tERROR");
    for l in letters {
        out.line(format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            l.id,
            when(l.at_ms),
            l.queue,
            l.routing_key,
            l.attempts,
            headline(&l.error, 120)
        ));
    }
    out.line(format!("{} dead letter(s)", letters.len()));
}

fn show(l: &DeadLetterRow, out: &mut Out) {
    out.line(format!("id: {}", l.id));
    out.line(format!("at: {} ({} ms)", when(l.at_ms), l.at_ms));
    out.line(format!("queue: {}", l.queue));
    out.line(format!("routing key: {}", l.routing_key));
    out.line(format!("attempts: {}", l.attempts));
    if let Ok(message) = Message::decode(&l.payload) {
        out.line(format!("message: {}", message.id));
    }
    out.line(format!("error: {}", l.error));
    out.line(format!("payload ({} bytes):", l.payload.len()));
    out.line(payload(&l.payload));
}

fn replayed(id: i64, outcome: &Replayed, out: &mut Out) -> Option<String> {
    match outcome {
        Replayed::Applied(a) => {
            out.line(format!(
                "dead letter {id}: replayed ({} operation(s) applied, {} skipped as already \
                 applied, {} not followed); deleted",
                a.applied, a.skipped, a.ignored
            ));
            None
        }
        Replayed::Failed(error) => Some(format!("dead letter {id}: {error}")),
    }
}

pub(crate) async fn run(
    env: &Env<'_>,
    command: &DeadLetterCommand,
    out: &mut Out,
) -> Result<(), CliError> {
    let db = env.database().await?;
    match command {
        DeadLetterCommand::List => {
            let letters = dead_letters::list(&db)
                .await
                .map_err(|e| store_error("reading the dead letters", e))?;
            list(&letters, out);
        }
        DeadLetterCommand::Show { id } => {
            let letter = dead_letters::get(&db, *id).await.map_err(not_found)?;
            show(&letter, out);
        }
        DeadLetterCommand::Replay {
            which,
            require_user_id,
        } => {
            if env.followers().is_empty() {
                return Err(CliError::failed(
                    "replay applies dead letters to the subscribed models, and this program \
                     registers none (Cli::subscribe::<Model>())",
                ));
            }
            let applier = env.applier(db).require_user_id(*require_user_id);
            let outcomes = match which.id {
                Some(id) => vec![(id, applier.replay_dead_letter(id).await.map_err(not_found)?)],
                None => applier
                    .replay_dead_letters()
                    .await
                    .map_err(|e| store_error("replaying the dead letters", e))?,
            };
            if outcomes.is_empty() {
                out.line("no dead letters");
            }
            let failures: Vec<String> = outcomes
                .iter()
                .filter_map(|(id, outcome)| replayed(*id, outcome, out))
                .collect();
            if !failures.is_empty() {
                return Err(CliError::failed(format!(
                    "{} of {} dead letter(s) still fail and are kept with their new error:\n{}",
                    failures.len(),
                    outcomes.len(),
                    failures.join("\n")
                )));
            }
        }
        DeadLetterCommand::Drop(which) => match which.id {
            Some(id) => {
                dead_letters::delete(&db, id).await.map_err(not_found)?;
                out.line(format!("dead letter {id}: dropped"));
            }
            None => {
                let n = dead_letters::delete_all(&db)
                    .await
                    .map_err(|e| store_error("dropping the dead letters", e))?;
                out.line(format!("dropped {n} dead letter(s)"));
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_709_210_096_000), "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn headlines_are_one_short_line() {
        assert_eq!(headline("short", 10), "short");
        assert_eq!(headline("two\nlines", 10), "two…");
        assert_eq!(headline("abcdefghijkl", 5), "abcd…");
    }
}
