//! Network faults that a test makes itself, on loopback only: an nftables table of its own
//! (`inet promiscuous_faults`, from Debian's nftables, which `scripts/services.sh cluster up`
//! installs) drops the packets of one link and nothing else on the machine. A link is one
//! cluster node's AMQP port (its clients: a partition between a subscriber and its node) or one
//! node's distribution address (`127.1.0.N`: a partition between that node and the others).
//!
//! This machine's kernel has no `netem` (nor `prio`, `sfq`, `fq_codel`: `tc qdisc add … netem`
//! answers "Specified qdisc kind is unknown"), so a slow link is a lossy one: `limit rate
//! over` drops what passes a packet rate, and TCP's retransmissions make the link slow.
//!
//! Only one fault at a time: making one removes any other (a test that died left it behind),
//! and dropping the [`Fault`] removes it.

use std::process::{Command, Stdio};

const TABLE: &str = "promiscuous_faults";

/// What a fault acts on.
#[derive(Clone, Debug)]
pub enum Link {
    /// TCP to and from this port on loopback (a node's clients).
    Port(u16),
    /// IPv4 packets to and from this loopback address (a node's distribution).
    Address(String),
}

impl Link {
    /// The nftables matches of the packets of this link, one per direction.
    fn matches(&self) -> [String; 2] {
        match self {
            Link::Port(port) => [format!("tcp dport {port}"), format!("tcp sport {port}")],
            Link::Address(ip) => {
                assert!(
                    ip.starts_with("127."),
                    "faults are made on loopback only, not on {ip}"
                );
                [format!("ip daddr {ip}"), format!("ip saddr {ip}")]
            }
        }
    }
}

/// A fault in force until dropped.
#[must_use = "the fault is removed when dropped"]
pub struct Fault {
    what: String,
}

impl Fault {
    /// Every packet of `link` dropped: a partition (connections stall, new ones get no answer).
    pub fn cut(link: Link) -> Fault {
        Self::make(&link, "counter drop", format!("{link:?} cut"))
    }

    /// The packets of `link` beyond `per_second` (each way) dropped: a slow, lossy link.
    pub fn thin(link: Link, per_second: u32) -> Fault {
        // The counter after the limit: it counts what is dropped only.
        let verdict = format!("limit rate over {per_second}/second counter drop");
        Self::make(
            &link,
            &verdict,
            format!("{link:?} thinned to {per_second} packets/s"),
        )
    }

    fn make(link: &Link, verdict: &str, what: String) -> Fault {
        remove();
        let rules: String = link
            .matches()
            .iter()
            .map(|m| format!("    {m} {verdict}\n"))
            .collect();
        // The output hook sees every packet on loopback once (sent and received on `lo`).
        let script = format!(
            "table inet {TABLE} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        nft(&["-f", "-"], Some(&script)).unwrap_or_else(|e| panic!("making the fault {what}: {e}"));
        Fault { what }
    }

    /// What this fault does, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// How many packets the fault dropped so far (nftables' counters), to show it acted.
    pub fn dropped(&self) -> u64 {
        let out = Command::new("nft")
            .args(["list", "table", "inet", TABLE])
            .output()
            .unwrap_or_else(|e| panic!("running nft to read {}: {e}", self.what));
        let listing = String::from_utf8_lossy(&out.stdout);
        // Rules read "tcp dport 5703 [limit rate over 5/second] counter packets N bytes M drop".
        listing
            .split("packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        remove();
    }
}

/// Removes the faults' table, if there is one.
fn remove() {
    let _ = nft(&["delete", "table", "inet", TABLE], None);
}

fn nft(args: &[&str], input: Option<&str>) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "running nft (Debian's nftables; scripts/services.sh cluster up installs it): {e}"
            )
        })?;
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
