//! Programs the macros must accept: they compile as part of this test, and their assertions
//! run. (The compile errors the macros promise are in `tests/ui.rs`, with trybuild.)

mod virtual_attribute {
    // A published model with a field attribute, a virtual attribute (a method) and `as`.
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

    #[test]
    fn publishes_fields_and_virtual_attributes() {
        use promiscuous::Published;
        assert_eq!(<user::Model as Published>::ENDPOINT, "crowdtap/user");
        assert_eq!(
            <user::Model as Published>::ATTRIBUTES,
            &["name", "full_name"]
        );
    }
}

mod foreign_key_callbacks {
    // A subscribed model with `foreign_key` and user-written `Callbacks`.
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

    #[test]
    fn subscribes_with_a_foreign_key_and_callbacks() {
        use promiscuous::Subscribed;
        assert_eq!(<member::Model as Subscribed>::FROM, "crowdtap/user");
        assert_eq!(
            <member::Model as Subscribed>::ATTRIBUTES,
            &["name", "email"]
        );
    }
}
