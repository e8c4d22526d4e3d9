//! `#[publish]`: parse → validate → generate `Published` and the `ActiveModelBehavior` hooks.

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Ident, ItemStruct, LitStr};

use crate::args::{self, Args};
use crate::model::{self, Entity};

/// A checked `#[publish]`.
struct Publish {
    endpoint: LitStr,
    type_name: LitStr,
    attributes: Vec<Attribute>,
    entity: Entity,
}

enum Attribute {
    Field(Ident),
    /// Any other name: a method of the model.
    Virtual(Ident),
}

fn validate(args: TokenStream, item: &ItemStruct) -> syn::Result<Publish> {
    let parsed: Args = syn::parse2(args.clone())?;
    let split = args::split(parsed, &["to", "as"], &[])?;
    let Some(to) = split.option("to").cloned() else {
        return Err(args::missing(
            &args,
            "#[publish] needs the endpoint to publish to: add `to = \"app/model\"`",
        ));
    };
    let endpoint_value = args::endpoint(&to, "to")?;
    let type_name = match split.option("as") {
        Some(lit) => {
            let v = lit.value();
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`as` must be a type name, found {v:?}"),
                ));
            }
            lit.clone()
        }
        None => {
            let model = endpoint_value.rsplit('/').next().unwrap_or_default();
            LitStr::new(&model.to_upper_camel_case(), to.span())
        }
    };
    let entity = model::entity(item, "publish")?;
    let attributes = split
        .attributes
        .iter()
        .cloned()
        .map(|name| {
            if entity.field(&name.unraw().to_string()).is_some() {
                Attribute::Field(name)
            } else {
                Attribute::Virtual(name)
            }
        })
        .collect();
    Ok(Publish {
        endpoint: to,
        type_name,
        attributes,
        entity,
    })
}

/// Emitted with an error: #[publish] owns the entity's `ActiveModelBehavior`, so without it the
/// error would come with two "`ActiveModelBehavior` is not implemented" errors from
/// `DeriveEntityModel`. Only for a `DeriveEntityModel` struct, the only kind with an `ActiveModel`.
pub fn on_error(item: &ItemStruct) -> TokenStream {
    if !model::derives_entity_model(item) {
        return TokenStream::new();
    }
    quote! {
        impl ::promiscuous::__private::sea_orm::ActiveModelBehavior for ActiveModel {}
    }
}

pub fn expand(args: TokenStream, item: &ItemStruct) -> syn::Result<TokenStream> {
    let p = validate(args, item)?;
    let endpoint = &p.endpoint;
    let type_name = &p.type_name;
    let pk = &p.entity.primary_key().ident;
    let names = p.attributes.iter().map(|a| match a {
        Attribute::Field(i) | Attribute::Virtual(i) => {
            LitStr::new(&i.unraw().to_string(), i.span())
        }
    });
    let inserts = p.attributes.iter().map(|a| match a {
        Attribute::Field(i) => {
            let name = LitStr::new(&i.unraw().to_string(), i.span());
            quote! { attributes.insert(#name.to_string(), __p::serde_json::to_value(&self.#i)?); }
        }
        Attribute::Virtual(i) => {
            let name = LitStr::new(&i.unraw().to_string(), i.span());
            // `Model::name(self)`: an unknown name fails here, spanned at the attribute.
            quote! { attributes.insert(#name.to_string(), __p::serde_json::to_value(&Model::#i(self))?); }
        }
    });
    Ok(quote! {
        const _: () = {
            use ::promiscuous::__private as __p;
            use __p::sea_orm::{ConnectionTrait, DbErr};

            impl __p::Published for Model {
                const ENDPOINT: &'static str = #endpoint;
                const TYPES: &'static [&'static str] = &[#type_name];
                const ATTRIBUTES: &'static [&'static str] = &[#(#names),*];

                fn publisher_id(&self) -> ::core::result::Result<__p::serde_json::Value, __p::serde_json::Error> {
                    __p::serde_json::to_value(&self.#pk)
                }

                fn published_attributes(
                    &self,
                ) -> ::core::result::Result<__p::serde_json::Map<::std::string::String, __p::serde_json::Value>, __p::serde_json::Error> {
                    let mut attributes = __p::serde_json::Map::new();
                    #(#inserts)*
                    ::core::result::Result::Ok(attributes)
                }
            }

            // Lets `promiscuous::tracked` connections recognise rows of this model.
            fn __promiscuous_table() -> &'static str {
                __p::sea_orm::EntityName::table_name(&Entity)
            }

            fn __promiscuous_key(row: &__p::sea_orm::QueryResult, prefix: &str) -> ::core::option::Option<::std::string::String> {
                let model = <Model as __p::sea_orm::FromQueryResult>::from_query_result(row, prefix).ok()?;
                let id = __p::Published::publisher_id(&model).ok()?;
                ::core::option::Option::Some(__p::instance_key(#endpoint, &id))
            }

            __p::inventory::submit! {
                __p::PublishedEntity { table: __promiscuous_table, key_of: __promiscuous_key }
            }

            #[__p::async_trait]
            impl __p::sea_orm::ActiveModelBehavior for ActiveModel {
                async fn before_save<C>(self, db: &C, _insert: bool) -> ::core::result::Result<Self, DbErr>
                where
                    C: ConnectionTrait,
                {
                    __p::require_transaction(db, #endpoint)?;
                    ::core::result::Result::Ok(self)
                }

                async fn after_save<C>(model: Model, db: &C, insert: bool) -> ::core::result::Result<Model, DbErr>
                where
                    C: ConnectionTrait,
                {
                    __p::record_save(&model, db, insert).await?;
                    ::core::result::Result::Ok(model)
                }

                async fn before_delete<C>(self, db: &C) -> ::core::result::Result<Self, DbErr>
                where
                    C: ConnectionTrait,
                {
                    __p::require_transaction(db, #endpoint)?;
                    ::core::result::Result::Ok(self)
                }

                async fn after_delete<C>(self, db: &C) -> ::core::result::Result<Self, DbErr>
                where
                    C: ConnectionTrait,
                {
                    let id = match self.#pk.try_as_ref() {
                        ::core::option::Option::Some(v) => __p::serde_json::to_value(v)
                            .map_err(|e| DbErr::Custom(::std::format!("promiscuous: {}: serializing the primary key: {}", #endpoint, e)))?,
                        ::core::option::Option::None => {
                            return ::core::result::Result::Err(DbErr::Custom(::std::format!(
                                "promiscuous: {}: cannot publish a delete whose ActiveModel has no primary key value",
                                #endpoint
                            )));
                        }
                    };
                    __p::record_destroy::<Model, C>(id, db).await?;
                    ::core::result::Result::Ok(self)
                }
            }
        };
    })
}
