//! `#[subscribe]`: parse → validate → generate `Subscribed` (and empty `Callbacks` unless the
//! user writes them).

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{Ident, ItemStruct, LitStr, Type};

use crate::args::{self, Args};
use crate::model;

/// A checked `#[subscribe]`.
struct Subscribe {
    endpoint: LitStr,
    /// (field, type) of each subscribed attribute.
    attributes: Vec<(Ident, Type)>,
    /// The column receiving the publisher's id.
    key: (Ident, Type),
    user_callbacks: bool,
}

fn validate(args: TokenStream, item: &ItemStruct) -> syn::Result<Subscribe> {
    let parsed: Args = syn::parse2(args.clone())?;
    let split = args::split(parsed, &["from", "foreign_key"], &["callbacks"])?;
    let Some(from) = split.option("from") else {
        return Err(args::missing(
            &args,
            "#[subscribe] needs the publisher's endpoint: add `from = \"app/model\"`",
        ));
    };
    args::endpoint(from, "from")?;
    let entity = model::entity(item, "subscribe")?;
    let key = match split.option("foreign_key") {
        None => entity.primary_key(),
        // Compared as a string: the value need not be a valid identifier.
        Some(lit) => entity.field(&lit.value()).ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                format!(
                    "`foreign_key` names the field holding the publisher's id, but `Model` has no \
                     field `{}`",
                    lit.value()
                ),
            )
        })?,
    };
    let mut attributes = Vec::new();
    for name in &split.attributes {
        let Some(field) = entity.field(&name.unraw().to_string()) else {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`Model` has no field `{name}`: subscribed attributes must be fields of the model"
                ),
            ));
        };
        if field.ident == key.ident {
            return Err(syn::Error::new(
                name.span(),
                if split.option("foreign_key").is_some() {
                    format!(
                        "`{name}` is the `foreign_key`, which holds the publisher's id; it cannot \
                         also be a subscribed attribute"
                    )
                } else {
                    format!(
                        "`{name}` is the primary key, which holds the publisher's id (there is no \
                         `foreign_key`); it cannot also be a subscribed attribute"
                    )
                },
            ));
        }
        attributes.push((field.ident.clone(), field.ty.clone()));
    }
    Ok(Subscribe {
        endpoint: from.clone(),
        attributes,
        key: (key.ident.clone(), key.ty.clone()),
        user_callbacks: split.flag("callbacks"),
    })
}

pub fn expand(args: TokenStream, item: &ItemStruct) -> syn::Result<TokenStream> {
    let s = validate(args, item)?;
    let endpoint = &s.endpoint;
    let (key, key_ty) = &s.key;
    let key_column = format_ident!("{}", key.unraw().to_string().to_upper_camel_case());
    let names: Vec<LitStr> = s
        .attributes
        .iter()
        .map(|(i, _)| LitStr::new(&i.unraw().to_string(), i.span()))
        .collect();
    let fields: Vec<&Ident> = s.attributes.iter().map(|(i, _)| i).collect();
    let types: Vec<&Type> = s.attributes.iter().map(|(_, t)| t).collect();
    let callbacks = (!s.user_callbacks).then(|| quote! { impl __p::Callbacks for Model {} });
    Ok(quote! {
        const _: () = {
            use ::promiscuous::__private as __p;
            use __p::sea_orm::{ActiveModelBehavior, ColumnTrait, EntityTrait, QueryFilter};

            impl __p::Subscribed for Model {
                type Table = Entity;
                type Active = ActiveModel;
                const FROM: &'static str = #endpoint;
                const ATTRIBUTES: &'static [&'static str] = &[#(#names),*];

                fn find_by_publisher_id(
                    id: &__p::serde_json::Value,
                ) -> ::core::result::Result<__p::sea_orm::Select<Entity>, __p::AttributeError> {
                    let id: #key_ty = __p::publisher_id(#endpoint, id)?;
                    ::core::result::Result::Ok(<Entity as EntityTrait>::find().filter(Column::#key_column.eq(id)))
                }

                fn new_active_model(
                    id: &__p::serde_json::Value,
                    attributes: &__p::serde_json::Map<::std::string::String, __p::serde_json::Value>,
                ) -> ::core::result::Result<ActiveModel, __p::AttributeError> {
                    let mut active = <ActiveModel as ActiveModelBehavior>::new();
                    active.#key = __p::sea_orm::Set(__p::publisher_id::<#key_ty>(#endpoint, id)?);
                    #( active.#fields = __p::sea_orm::Set(__p::attribute::<#types>(#endpoint, attributes, #names)?); )*
                    ::core::result::Result::Ok(active)
                }

                fn apply_attributes(
                    active: &mut ActiveModel,
                    attributes: &__p::serde_json::Map<::std::string::String, __p::serde_json::Value>,
                ) -> ::core::result::Result<(), __p::AttributeError> {
                    #( active.#fields.set_if_not_equals(__p::attribute::<#types>(#endpoint, attributes, #names)?); )*
                    ::core::result::Result::Ok(())
                }
            }

            #callbacks
        };
    })
}
