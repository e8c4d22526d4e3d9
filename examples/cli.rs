//! The promiscuous command line of the two-process example's services: an application builds
//! its own `promiscuous` binary, with its models registered.
//!
//! ```text
//! scripts/services.sh up && eval "$(scripts/services.sh env)"
//! export DATABASE_URL=sqlite://subscriber.db?mode=rwc
//! cargo run --example cli -- subscribe --workers 8 --recovery=2     # Ctrl-C stops
//! cargo run --example cli -- status
//! cargo run --example cli -- dead-letters list
//! cargo run --example cli -- mocks -o definitions.json
//! cargo run --example cli -- --database-url sqlite://publisher.db publish crowdtap/user "id > 10"
//! ```

use std::process::ExitCode;

mod shared;
use shared::{member, user};

#[tokio::main]
async fn main() -> ExitCode {
    promiscuous_cli::Cli::new("crowdtap_members")
        .subscribe::<member::Model>()
        .publish::<user::Model>()
        .run()
        .await
}
