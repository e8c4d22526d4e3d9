//! `#[subscribe]`: parse → validate → generate `Subscribed` (and empty `Callbacks` unless the
//! user writes them).
//!
//! One `#[subscribe(...)]` per publisher endpoint (and type); stacked ones keep one model in
//! sync from several publishers.

use std::collections::BTreeSet;

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{Ident, ItemStruct, LitStr, Type};

use crate::args::{self, Args};
use crate::definitions;
use crate::kind::MacroKind;
use crate::model::{self, Entity};

/// One checked `#[subscribe(...)]`.
pub struct Subscription {
    pub from: LitStr,
    /// The type subscribed to (`as`); without it, any type published to `from`.
    pub as_type: Option<LitStr>,
    /// (field, type) of each subscribed attribute.
    pub attributes: Vec<(Ident, Type)>,
    /// Generated code keeping the checked definitions file a dependency of the build.
    pub checked: TokenStream,
}

/// The options every subscription takes; `key_option` is the one naming the field that holds
/// the publisher's id (`foreign_key` for models, `id` for observers).
pub fn subscription(
    args: &TokenStream,
    fields: &Entity,
    kind: MacroKind,
    key_option: &str,
    flags: &[&str],
) -> syn::Result<(Subscription, args::Split)> {
    let parsed: Args = syn::parse2(args.clone())?;
    let split = args::split(parsed, &["from", "as", key_option, "definitions"], flags)?;
    let Some(from) = split.option("from").cloned() else {
        return Err(args::missing(
            args,
            &format!("{kind} needs the publisher's endpoint: add `from = \"app/model\"`"),
        ));
    };
    args::endpoint(&from, "from")?;
    let as_type = match split.option("as") {
        Some(lit) => args::type_names(lit, "as")?.pop(),
        None => None,
    };
    let mut attributes = Vec::new();
    for name in &split.attributes {
        let Some(field) = fields.field(&name.unraw().to_string()) else {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "`{}` has no field `{name}`: subscribed attributes must be fields of the {}",
                    fields.name,
                    if kind.on_model() { "model" } else { "struct" }
                ),
            ));
        };
        attributes.push((field.ident.clone(), field.ty.clone()));
    }
    let checked = match split.option("definitions") {
        Some(path) => definitions::check(path, &from, as_type.as_ref(), &split.attributes)?,
        None => TokenStream::new(),
    };
    Ok((
        Subscription {
            from,
            as_type,
            attributes,
            checked,
        },
        split,
    ))
}

/// Checks that no `(from, as)` pair is subscribed twice.
pub fn distinct(subscriptions: &[Subscription]) -> syn::Result<()> {
    let mut seen = BTreeSet::new();
    for s in subscriptions {
        let as_type = s.as_type.as_ref().map(LitStr::value);
        if !seen.insert((s.from.value(), as_type.clone())) {
            let what = match as_type {
                Some(t) => format!("{:?} as {t:?}", s.from.value()),
                None => format!("{:?}", s.from.value()),
            };
            return Err(syn::Error::new(
                s.from.span(),
                format!("{what} is subscribed twice by this struct"),
            ));
        }
    }
    Ok(())
}

/// `Subscription` definitions, as generated code.
pub fn definitions(subscriptions: &[Subscription]) -> Vec<TokenStream> {
    subscriptions
        .iter()
        .map(|s| {
            let from = &s.from;
            let as_type = match &s.as_type {
                Some(t) => quote!(::core::option::Option::Some(#t)),
                None => quote!(::core::option::Option::None),
            };
            let names = s
                .attributes
                .iter()
                .map(|(i, _)| LitStr::new(&i.unraw().to_string(), i.span()));
            quote! {
                __p::Subscription { from: #from, as_type: #as_type, attributes: &[#(#names),*] }
            }
        })
        .collect()
}

/// A `match subscription { .. }` with one arm per subscription (the last one as `_`).
pub fn per_subscription(
    subscriptions: &[Subscription],
    arm: impl Fn(&Subscription, usize) -> TokenStream,
) -> TokenStream {
    let last = subscriptions.len() - 1;
    let arms = subscriptions.iter().enumerate().map(|(n, s)| {
        let body = arm(s, n);
        if n == last {
            quote! { _ => { #body } }
        } else {
            quote! { #n => { #body } }
        }
    });
    quote! { match subscription { #(#arms)* } }
}

/// A checked `#[subscribe]`, stacked ones included.
pub struct Subscribe {
    pub subscriptions: Vec<Subscription>,
    /// The field receiving the publisher's id, per subscription.
    pub keys: Vec<(Ident, Type)>,
    pub user_callbacks: bool,
}

fn validate(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<Subscribe> {
    let entity = model::entity(item, MacroKind::Subscribe)?;
    validate_entity(&all_args, &entity, MacroKind::Subscribe)
}

/// Checks the argument lists of one subscriber model against its fields.
pub fn validate_entity(
    all_args: &[TokenStream],
    entity: &Entity,
    kind: MacroKind,
) -> syn::Result<Subscribe> {
    let mut subscriptions = Vec::new();
    let mut keys = Vec::new();
    let mut user_callbacks = false;
    for args in all_args {
        let (s, split) = subscription(args, entity, kind, "foreign_key", &["callbacks"])?;
        let key = match split.option("foreign_key") {
            None => entity.primary_key()?,
            // Compared as a string: the value need not be a valid identifier.
            Some(lit) => entity.field(&lit.value()).ok_or_else(|| {
                syn::Error::new(
                    lit.span(),
                    format!(
                        "`foreign_key` names the field holding the publisher's id, but `Model` \
                         has no field `{}`",
                        lit.value()
                    ),
                )
            })?,
        };
        for name in &split.attributes {
            if *name == key.ident {
                return Err(syn::Error::new(
                    name.span(),
                    if split.option("foreign_key").is_some() {
                        format!(
                            "`{name}` is the `foreign_key`, which holds the publisher's id; it \
                             cannot also be a subscribed attribute"
                        )
                    } else {
                        format!(
                            "`{name}` is the primary key, which holds the publisher's id (there \
                             is no `foreign_key`); it cannot also be a subscribed attribute"
                        )
                    },
                ));
            }
        }
        user_callbacks |= split.flag("callbacks");
        keys.push((key.ident.clone(), key.ty.clone()));
        subscriptions.push(s);
    }
    distinct(&subscriptions)?;
    Ok(Subscribe {
        subscriptions,
        keys,
        user_callbacks,
    })
}

pub fn expand(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<TokenStream> {
    let s = validate(all_args, item)?;
    Ok(generate(&TokenStream::new(), &s))
}

/// The code of a checked subscriber model: `Subscribed` (and empty `Callbacks` unless the user
/// writes them). `module` is the path prefix of the entity's module (`member::`, or nothing for
/// `#[subscribe]` on the struct itself). Types written `_` are inferred from the fields.
pub fn generate(module: &TokenStream, s: &Subscribe) -> TokenStream {
    let defs = definitions(&s.subscriptions);
    let find = per_subscription(&s.subscriptions, |sub, n| {
        let from = &sub.from;
        let (key, key_ty) = &s.keys[n];
        let key_column = format_ident!("{}", key.unraw().to_string().to_upper_camel_case());
        if matches!(key_ty, Type::Infer(_)) {
            // The key's type is only known to the model: let a scratch ActiveModel infer it.
            quote! {
                let mut probe = <#module ActiveModel as ActiveModelBehavior>::new();
                probe.#key = __p::sea_orm::Set(__p::publisher_id(#from, id)?);
                let id = __p::sea_orm::ActiveModelTrait::get(&probe, #module Column::#key_column)
                    .into_value()
                    .unwrap_or(__p::sea_orm::Value::Int(::core::option::Option::None));
                ::core::result::Result::Ok(<#module Entity as EntityTrait>::find().filter(#module Column::#key_column.eq(id)))
            }
        } else {
            quote! {
                let id: #key_ty = __p::publisher_id(#from, id)?;
                ::core::result::Result::Ok(<#module Entity as EntityTrait>::find().filter(#module Column::#key_column.eq(id)))
            }
        }
    });
    // The publisher's id `id` as the value of the key column, and that column.
    let key_value = |sub: &Subscription, n: usize| {
        let from = &sub.from;
        let (key, key_ty) = &s.keys[n];
        let key_column = format_ident!("{}", key.unraw().to_string().to_upper_camel_case());
        let value = if matches!(key_ty, Type::Infer(_)) {
            quote! {{
                let mut probe = <#module ActiveModel as ActiveModelBehavior>::new();
                probe.#key = __p::sea_orm::Set(__p::publisher_id(#from, id)?);
                __p::sea_orm::ActiveModelTrait::get(&probe, #module Column::#key_column)
                    .into_value()
                    .unwrap_or(__p::sea_orm::Value::Int(::core::option::Option::None))
            }}
        } else {
            quote! { __p::sea_orm::Value::from(__p::publisher_id::<#key_ty>(#from, id)?) }
        };
        (value, key_column)
    };
    let find_many = per_subscription(&s.subscriptions, |sub, n| {
        let (value, key_column) = key_value(sub, n);
        quote! {
            let mut keys = ::std::vec::Vec::with_capacity(ids.len());
            for id in ids {
                keys.push(#value);
            }
            ::core::result::Result::Ok(::core::option::Option::Some(
                <#module Entity as EntityTrait>::find().filter(#module Column::#key_column.is_in(keys)),
            ))
        }
    });
    let replicates = per_subscription(&s.subscriptions, |sub, n| {
        let (value, key_column) = key_value(sub, n);
        quote! {
            let key = #value;
            ::core::result::Result::Ok(__p::sea_orm::ModelTrait::get(row, #module Column::#key_column) == key)
        }
    });
    let new = per_subscription(&s.subscriptions, |sub, n| {
        let from = &sub.from;
        let (key, key_ty) = &s.keys[n];
        let fields = sub.attributes.iter().map(|(i, _)| i);
        let types = sub.attributes.iter().map(|(_, t)| t);
        let names = sub
            .attributes
            .iter()
            .map(|(i, _)| LitStr::new(&i.unraw().to_string(), i.span()));
        quote! {
            active.#key = __p::sea_orm::Set(__p::publisher_id::<#key_ty>(#from, id)?);
            #( active.#fields = __p::sea_orm::Set(__p::attribute::<#types>(#from, attributes, #names)?); )*
        }
    });
    let apply = per_subscription(&s.subscriptions, |sub, _| {
        let from = &sub.from;
        let fields = sub.attributes.iter().map(|(i, _)| i);
        let types = sub.attributes.iter().map(|(_, t)| t);
        let names = sub
            .attributes
            .iter()
            .map(|(i, _)| LitStr::new(&i.unraw().to_string(), i.span()));
        quote! {
            #( active.#fields.set_if_not_equals(__p::attribute::<#types>(#from, attributes, #names)?); )*
        }
    });
    let callbacks =
        (!s.user_callbacks).then(|| quote! { impl __p::Callbacks for #module Model {} });
    let checked = s.subscriptions.iter().map(|s| &s.checked);
    quote! {
        const _: () = {
            use ::promiscuous::__private as __p;
            use __p::sea_orm::{ActiveModelBehavior, ColumnTrait, EntityTrait, QueryFilter};

            impl __p::Subscribed for #module Model {
                type Table = #module Entity;
                type Active = #module ActiveModel;
                const SUBSCRIPTIONS: &'static [__p::Subscription] = &[#(#defs),*];

                fn find_by_publisher_id(
                    subscription: usize,
                    id: &__p::serde_json::Value,
                ) -> ::core::result::Result<__p::sea_orm::Select<#module Entity>, __p::AttributeError> {
                    #find
                }

                fn find_by_publisher_ids(
                    subscription: usize,
                    ids: &[__p::serde_json::Value],
                ) -> ::core::result::Result<::core::option::Option<__p::sea_orm::Select<#module Entity>>, __p::AttributeError> {
                    #find_many
                }

                fn replicates(
                    subscription: usize,
                    row: &Self,
                    id: &__p::serde_json::Value,
                ) -> ::core::result::Result<bool, __p::AttributeError> {
                    #replicates
                }

                fn new_active_model(
                    subscription: usize,
                    id: &__p::serde_json::Value,
                    attributes: &__p::serde_json::Map<::std::string::String, __p::serde_json::Value>,
                ) -> ::core::result::Result<#module ActiveModel, __p::AttributeError> {
                    let mut active = <#module ActiveModel as ActiveModelBehavior>::new();
                    #new
                    ::core::result::Result::Ok(active)
                }

                fn apply_attributes(
                    subscription: usize,
                    active: &mut #module ActiveModel,
                    attributes: &__p::serde_json::Map<::std::string::String, __p::serde_json::Value>,
                ) -> ::core::result::Result<(), __p::AttributeError> {
                    #apply
                    ::core::result::Result::Ok(())
                }
            }

            #callbacks
            #(#checked)*
        };
    }
}
