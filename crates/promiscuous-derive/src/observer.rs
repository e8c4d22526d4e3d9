//! `#[observer]`: a plain struct built from each operation of the endpoints it follows, never
//! stored: only its callbacks run. parse → validate → generate `Observed`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, ItemStruct, LitStr, Type};

use crate::ephemeral::{id_field, stacked_ids};
use crate::kind::MacroKind;
use crate::model;
use crate::subscribe::{self, Subscription};

/// A checked `#[observer]`, stacked ones included.
struct Observer {
    subscriptions: Vec<Subscription>,
    id: (Ident, Type),
    /// Whether some field is neither the id nor subscribed (then `Default` fills it).
    partial: bool,
}

fn validate(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<Observer> {
    let entity = model::named_struct(item, MacroKind::Observer)?;
    let mut subscriptions = Vec::new();
    let mut id: Option<Ident> = None;
    for args in &all_args {
        let (s, split) = subscribe::subscription(args, &entity, MacroKind::Observer, "id", &[])?;
        let this = id_field(&entity, split.option("id"), MacroKind::Observer)?;
        // Spanned at the attribute as written in the argument list.
        if let Some(a) = split.attributes.iter().find(|a| a.unraw() == this.unraw()) {
            return Err(syn::Error::new(
                a.span(),
                format!("`{a}` holds the publisher's id; it cannot also be a subscribed attribute"),
            ));
        }
        if id.as_ref().is_some_and(|i| *i != this) {
            return Err(stacked_ids(&split, args, MacroKind::Observer));
        }
        id = Some(this);
        subscriptions.push(s);
    }
    subscribe::distinct(&subscriptions)?;
    let id = id.ok_or_else(|| syn::Error::new(item.ident.span(), "#[observer] needs `from`"))?;
    let id_ty = entity
        .field(&id.unraw().to_string())
        .map(|f| f.ty.clone())
        .ok_or_else(|| syn::Error::new(id.span(), "no such field"))?;
    let partial = subscriptions.iter().any(|s| {
        entity
            .fields
            .iter()
            .any(|f| f.ident != id && !s.attributes.iter().any(|(a, _)| *a == f.ident))
    });
    Ok(Observer {
        subscriptions,
        id: (id, id_ty),
        partial,
    })
}

pub fn expand(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<TokenStream> {
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.generics,
            "#[observer] structs cannot be generic",
        ));
    }
    let o = validate(all_args, item)?;
    let ty = &item.ident;
    let defs = subscribe::definitions(&o.subscriptions);
    let (id, id_ty) = &o.id;
    // `Default` fills what an operation does not carry; spanned at the struct, so that a
    // missing `#[derive(Default)]` is reported there.
    let default = quote_spanned! {ty.span()=> ..<#ty as ::core::default::Default>::default() };
    let rest = o.partial.then(|| default.clone());
    let build = subscribe::per_subscription(&o.subscriptions, |s, _| {
        let from = &s.from;
        let fields = s.attributes.iter().map(|(i, _)| i);
        let types = s.attributes.iter().map(|(_, t)| t);
        let names = s
            .attributes
            .iter()
            .map(|(i, _)| LitStr::new(&i.unraw().to_string(), i.span()));
        quote! {
            ::core::result::Result::Ok(#ty {
                #id: __p::publisher_id::<#id_ty>(#from, id)?,
                #( #fields: __p::attribute::<#types>(#from, attributes, #names)?, )*
                #rest
            })
        }
    });
    let destroyed = subscribe::per_subscription(&o.subscriptions, |s, _| {
        let from = &s.from;
        quote! {
            ::core::result::Result::Ok(#ty {
                #id: __p::publisher_id::<#id_ty>(#from, id)?,
                #default
            })
        }
    });
    let checked = o.subscriptions.iter().map(|s| &s.checked);
    Ok(quote! {
        const _: () = {
            use ::promiscuous::__private as __p;

            impl __p::Observed for #ty {
                const SUBSCRIPTIONS: &'static [__p::Subscription] = &[#(#defs),*];

                fn from_operation(
                    subscription: usize,
                    id: &__p::serde_json::Value,
                    attributes: &__p::serde_json::Map<::std::string::String, __p::serde_json::Value>,
                ) -> ::core::result::Result<Self, __p::AttributeError> {
                    #build
                }

                fn destroyed(
                    subscription: usize,
                    id: &__p::serde_json::Value,
                ) -> ::core::result::Result<Self, __p::AttributeError> {
                    #destroyed
                }
            }

            #(#checked)*
        };
    })
}
