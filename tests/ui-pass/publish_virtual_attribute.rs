//! A published model with a field attribute, a virtual attribute (a method) and `as`.

mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    #[promiscuous::publish(name, full_name, to = "crowdtap/user", as = "Person")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
        pub email: String,
    }

    impl Model {
        pub fn full_name(&self) -> String {
            format!("{} <{}>", self.name, self.email)
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
}

fn main() {
    use promiscuous::Published;
    assert_eq!(<user::Model as Published>::ENDPOINT, "crowdtap/user");
    assert_eq!(
        <user::Model as Published>::ATTRIBUTES,
        &["name", "full_name"]
    );
}
