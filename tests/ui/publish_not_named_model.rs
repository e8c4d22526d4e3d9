// A plain struct: `DeriveEntityModel` would add its own errors for a struct not named `Model`.
mod user {
    #[promiscuous::publish(name, to = "crowdtap/user")]
    pub struct User {
        pub id: i32,
        pub name: String,
    }
}

fn main() {}
