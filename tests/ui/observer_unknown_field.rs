#[derive(Default)]
#[promiscuous::observer(name, nickname, from = "crowdtap/user", id = "crowdtap_id")]
pub struct Greeter {
    pub crowdtap_id: i64,
    pub name: String,
    pub greeted: bool,
}

impl promiscuous::Callbacks for Greeter {}

fn main() {}
