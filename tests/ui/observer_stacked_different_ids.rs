#[derive(Default)]
#[promiscuous::observer(name, from = "crowdtap/user", id = "crowdtap_id")]
#[promiscuous::observer(name, from = "legacy/person", id = "legacy_id")]
pub struct Greeter {
    pub crowdtap_id: i64,
    pub legacy_id: String,
    pub name: String,
}

impl promiscuous::Callbacks for Greeter {}

fn main() {}
