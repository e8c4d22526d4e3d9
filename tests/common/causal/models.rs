//! The models of the causal tests: the publisher's other models (`user` is in `common`) and
//! the subscriber's copies, whose callbacks record the history (every applied operation, in
//! the transaction that applies it) and check invariants (a photo arrives after its owner).

/// The publisher's other models (`user` is in `common`).
pub mod publisher {
    pub mod friendship {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "friendships")]
        #[promiscuous::publish(user_id, friend_id, to = "crowdtap/friendship")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub user_id: i32,
            pub friend_id: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
    }

    pub mod photo {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "photos")]
        #[promiscuous::publish(user_id, caption, to = "crowdtap/photo")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub user_id: i32,
            pub caption: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(
                belongs_to = "crate::common::user::Entity",
                from = "Column::UserId",
                to = "crate::common::user::Column::Id"
            )]
            Owner,
        }

        impl Related<crate::common::user::Entity> for Entity {
            fn to() -> RelationDef {
                Relation::Owner.def()
            }
        }
    }
}

/// The subscriber's copies, whose callbacks record the history and check invariants.
pub mod subscriber {
    pub mod user {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "s_users")]
        #[promiscuous::subscribe(
            name,
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
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod friendship {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "s_friendships")]
        #[promiscuous::subscribe(
            user_id,
            friend_id,
            from = "crowdtap/friendship",
            foreign_key = "crowdtap_id",
            callbacks
        )]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            #[sea_orm(unique)]
            pub crowdtap_id: i32,
            pub user_id: i32,
            pub friend_id: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod photo {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "s_photos")]
        #[promiscuous::subscribe(
            user_id,
            caption,
            from = "crowdtap/photo",
            foreign_key = "crowdtap_id",
            callbacks
        )]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            #[sea_orm(unique)]
            pub crowdtap_id: i32,
            pub user_id: i32,
            pub caption: String,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Who could see each photo when it arrived: the owner's friends at that moment.
    pub mod audience {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "s_audience")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i32,
            pub photo_id: i32,
            pub friend_id: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Every applied operation, in commit order.
    pub mod event {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "s_history")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub seq: i64,
            pub worker: i32,
            pub message: String,
            pub key: String,
            pub version: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    use promiscuous::{BoxError, Callbacks, Ctx};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, QueryFilter, Set};

    /// Records the operation being applied, in its transaction.
    async fn record(ctx: &Ctx<'_>) -> Result<(), BoxError> {
        event::ActiveModel {
            seq: NotSet,
            worker: Set(promiscuous_test::chaos::current_worker().unwrap_or(0) as i32),
            message: Set(ctx.message.id.clone()),
            key: Set(ctx.operation.key()),
            version: Set(ctx.operation.version as i64),
        }
        .insert(ctx.db)
        .await?;
        Ok(())
    }

    /// Callbacks that only record the history.
    macro_rules! recording {
        ($($model:ty),*) => {$(
            impl Callbacks for $model {
                async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
                    record(ctx).await
                }
                async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
                    record(ctx).await
                }
                async fn after_destroy(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
                    record(ctx).await
                }
            }
        )*};
    }

    recording!(user::Model, friendship::Model);

    impl Callbacks for photo::Model {
        /// A photo needs its owner, and is shown to the owner's friends of the moment.
        async fn after_create(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
            record(ctx).await?;
            let owner = user::Entity::find()
                .filter(user::Column::CrowdtapId.eq(self.user_id))
                .one(ctx.db)
                .await?;
            if owner.is_none() {
                return Err(format!(
                    "photo {} arrived before its owner, user {}",
                    self.crowdtap_id, self.user_id
                )
                .into());
            }
            let friends = friendship::Entity::find()
                .filter(friendship::Column::UserId.eq(self.user_id))
                .all(ctx.db)
                .await?;
            for f in friends {
                audience::ActiveModel {
                    id: NotSet,
                    photo_id: Set(self.crowdtap_id),
                    friend_id: Set(f.friend_id),
                }
                .insert(ctx.db)
                .await?;
            }
            Ok(())
        }
        async fn after_update(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
            record(ctx).await
        }
        async fn after_destroy(&self, ctx: &Ctx<'_>) -> Result<(), BoxError> {
            record(ctx).await
        }
    }
}
