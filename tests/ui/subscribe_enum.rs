mod user {
    #[promiscuous::subscribe(name, from = "crowdtap/user")]
    pub enum Model {
        Admin,
        Member,
    }
}

fn main() {}
