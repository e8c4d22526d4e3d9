mod user {
    #[promiscuous::publish(name, to = "crowdtap/user")]
    pub struct Model(i32, String);
}

fn main() {}
