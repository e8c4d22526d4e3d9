// A plain struct: `DeriveEntityModel` would add its own errors for an entity without a primary key.
mod user {
    #[promiscuous::publish(name, to = "crowdtap/user")]
    pub struct Model {
        pub id: i32,
        pub name: String,
    }
}

fn main() {}
