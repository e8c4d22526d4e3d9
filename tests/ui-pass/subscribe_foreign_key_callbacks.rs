//! A subscribed model with `foreign_key` and user-written `Callbacks`.

mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        email,
        from = "crowdtap/user",
        foreign_key = "crowdtap_id",
        callbacks
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub crowdtap_id: i32,
        pub name: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl promiscuous::Callbacks for Model {
        async fn after_create(
            &self,
            _ctx: &promiscuous::Ctx<'_>,
        ) -> Result<(), promiscuous::BoxError> {
            println!("Hi {}!", self.name);
            Ok(())
        }
    }
}

fn main() {
    use promiscuous::Subscribed;
    assert_eq!(<member::Model as Subscribed>::FROM, "crowdtap/user");
    assert_eq!(
        <member::Model as Subscribed>::ATTRIBUTES,
        &["name", "email"]
    );
}
