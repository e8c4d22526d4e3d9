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
        use promiscuous::{Endpoint, Published, PublishedAttribute};
        assert_eq!(
            <user::Model as Published>::ENDPOINTS,
            &[Endpoint {
                endpoint: "crowdtap/user",
                types: &["Person"],
                attributes: &[
                    PublishedAttribute {
                        name: "name",
                        rust_type: "String"
                    },
                    PublishedAttribute {
                        name: "full_name",
                        rust_type: ""
                    },
                ],
            }]
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
        use promiscuous::{Subscribed, Subscription};
        assert_eq!(
            <member::Model as Subscribed>::SUBSCRIPTIONS,
            &[Subscription {
                from: "crowdtap/user",
                as_type: None,
                attributes: &["name", "email"],
            }]
        );
    }
}

mod stacked_and_polymorphic {
    // One model published to two endpoints (API versions), as a subtype; another subscribed
    // from two publishers, one of them by type.
    pub mod admin {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "admins")]
        #[promiscuous::publish(name, level, to = "crowdtap/user", as = "Admin", extends = "User")]
        #[promiscuous::publish(name, to = "crowdtap_v1/person")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub name: String,
            pub level: Option<i32>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    pub mod person {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "people")]
        #[promiscuous::subscribe(
            name,
            from = "crowdtap/user",
            as = "Admin",
            foreign_key = "crowdtap_id"
        )]
        #[promiscuous::subscribe(name, from = "legacy/person", foreign_key = "legacy_id")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub crowdtap_id: Option<i32>,
            pub legacy_id: Option<String>,
            pub name: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    #[test]
    fn stacked_attributes_make_several_endpoints() {
        use promiscuous::{Published, Subscribed};
        let endpoints = <admin::Model as Published>::ENDPOINTS;
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].types, &["Admin", "User"]);
        assert_eq!(endpoints[0].attributes[1].rust_type, "Option<i32>");
        assert_eq!(endpoints[1].endpoint, "crowdtap_v1/person");
        assert_eq!(endpoints[1].types, &["Person"]);
        let subscriptions = <person::Model as Subscribed>::SUBSCRIPTIONS;
        assert_eq!(subscriptions.len(), 2);
        assert_eq!(subscriptions[0].as_type, Some("Admin"));
        assert_eq!(subscriptions[1].from, "legacy/person");
        let admin = admin::Model {
            id: 3,
            name: "Ada".into(),
            level: Some(9),
        };
        assert_eq!(
            promiscuous::Published::published_attributes(&admin, 1)
                .unwrap()
                .len(),
            1
        );
    }
}

mod ephemeral_and_observer {
    use promiscuous::{BoxError, Ctx};

    /// An event: published, never stored.
    #[promiscuous::ephemeral(page, user_id, to = "crowdtap/page_view", id = "uuid")]
    pub struct PageView {
        pub uuid: String,
        pub page: String,
        pub user_id: i32,
        pub internal: bool,
    }

    /// Observes users without storing them.
    #[derive(Default)]
    #[promiscuous::observer(name, from = "crowdtap/user")]
    pub struct Greeter {
        pub id: i64,
        pub name: String,
        pub greeted: bool,
    }

    impl promiscuous::Callbacks for Greeter {
        async fn after_create(&self, _ctx: &Ctx<'_>) -> Result<(), BoxError> {
            println!("Hi {}!", self.name);
            Ok(())
        }
    }

    #[test]
    fn ephemerals_publish_and_observers_build_from_operations() {
        use promiscuous::{Observed, Published};
        let view = PageView {
            uuid: "v-1".into(),
            page: "/".into(),
            user_id: 7,
            internal: false,
        };
        assert_eq!(view.publisher_id().unwrap(), "v-1");
        assert!(!view.internal, "not published");
        assert_eq!(
            view.published_attributes(0).unwrap(),
            *serde_json::json!({"page": "/", "user_id": 7})
                .as_object()
                .unwrap()
        );
        let attributes = serde_json::json!({"name": "Yoda", "email": "y@d"});
        let g = Greeter::from_operation(0, &serde_json::json!(4), attributes.as_object().unwrap())
            .unwrap();
        assert_eq!((g.id, g.name.as_str(), g.greeted), (4, "Yoda", false));
        let gone = Greeter::destroyed(0, &serde_json::json!(4)).unwrap();
        assert_eq!((gone.id, gone.name.as_str()), (4, ""));
    }
}

mod checked_against_definitions {
    // Subscriptions checked at compile time against a publisher's exported definitions: the
    // path relative to this crate's Cargo.toml, or (the observer) to this source file.
    pub mod staff {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "staff")]
        #[promiscuous::subscribe(
            name,
            level,
            from = "crowdtap/user",
            as = "Admin",
            foreign_key = "crowdtap_id",
            definitions = "tests/ui/definitions/crowdtap.json"
        )]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub crowdtap_id: i32,
            pub name: String,
            pub level: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    #[derive(Default)]
    #[promiscuous::observer(
        page,
        from = "crowdtap/page_view",
        definitions = "ui/definitions/crowdtap.json"
    )]
    pub struct PageViews {
        pub id: String,
        pub page: String,
    }

    impl promiscuous::Callbacks for PageViews {}

    #[test]
    fn checked_subscriptions_compile() {
        use promiscuous::{Observed, Subscribed};
        assert_eq!(
            <staff::Model as Subscribed>::SUBSCRIPTIONS[0].as_type,
            Some("Admin")
        );
        assert_eq!(
            <PageViews as Observed>::SUBSCRIPTIONS[0].attributes,
            &["page"]
        );
        let attributes = serde_json::json!({"page": "/"});
        let view = PageViews::from_operation(
            0,
            &serde_json::json!("v-1"),
            attributes.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!((view.id.as_str(), view.page.as_str()), ("v-1", "/"));
    }
}
