mod member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    #[promiscuous::subscribe(
        name,
        nickname,
        from = "crowdtap/user",
        foreign_key = "crowdtap_id",
        definitions = "definitions/crowdtap.json"
    )]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub crowdtap_id: i32,
        pub name: String,
        pub nickname: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn main() {}
