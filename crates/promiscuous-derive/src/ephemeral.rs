//! `#[ephemeral]`: a plain struct published like a model but never stored by the publisher (an
//! event). parse → validate → generate `Published` and `Ephemeral`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, ItemStruct};

use crate::kind::MacroKind;
use crate::model;
use crate::publish::{self, Endpoint};

/// A checked `#[ephemeral]`, stacked ones included.
struct EphemeralModel {
    endpoints: Vec<Endpoint>,
    id: Ident,
}

/// The field named by `id = "..."` (default `id`).
pub fn id_field(
    entity: &model::Entity,
    option: Option<&syn::LitStr>,
    kind: MacroKind,
) -> syn::Result<Ident> {
    let name = option.map_or_else(|| "id".to_string(), syn::LitStr::value);
    match entity.field(&name) {
        Some(f) => Ok(f.ident.clone()),
        None => {
            let span = option.map_or(entity.name.span(), syn::LitStr::span);
            Err(syn::Error::new(
                span,
                format!(
                    "{kind} needs the field holding the instance's id: `{}` has no field \
                     `{name}` (name it with `id = \"field\"`)",
                    entity.name
                ),
            ))
        }
    }
}

/// Stacked attributes naming different `id` fields: spanned at the `id` of the later one.
pub fn stacked_ids(split: &crate::args::Split, args: &TokenStream, kind: MacroKind) -> syn::Error {
    let message = format!("stacked {kind} attributes must name the same `id` field");
    match split.option("id") {
        Some(lit) => syn::Error::new(lit.span(), message),
        None => crate::args::missing(args, &message),
    }
}

fn validate(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<EphemeralModel> {
    let entity = model::named_struct(item, MacroKind::Ephemeral)?;
    let fields = |name: &str| entity.field(name).map(|f| model::type_text(&f.ty));
    let mut endpoints = Vec::new();
    let mut id = None;
    for args in &all_args {
        let (endpoint, split) = publish::endpoint(args, &fields, MacroKind::Ephemeral, &["id"])?;
        let this = id_field(&entity, split.option("id"), MacroKind::Ephemeral)?;
        if id.as_ref().is_some_and(|i: &Ident| *i != this) {
            return Err(stacked_ids(&split, args, MacroKind::Ephemeral));
        }
        id = Some(this);
        endpoints.push(endpoint);
    }
    publish::distinct(&endpoints)?;
    let id = id.ok_or_else(|| syn::Error::new(item.ident.span(), "#[ephemeral] needs `to`"))?;
    Ok(EphemeralModel { endpoints, id })
}

pub fn expand(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<TokenStream> {
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.generics,
            "#[ephemeral] structs cannot be generic",
        ));
    }
    let e = validate(all_args, item)?;
    let ty = &item.ident;
    let published = publish::published_impl(&syn::Path::from(ty.clone()), &e.endpoints, &e.id);
    Ok(quote! {
        const _: () = {
            use ::promiscuous::__private as __p;

            #published

            impl __p::Ephemeral for #ty {}

            __p::inventory::submit! {
                __p::Definition { endpoints: <#ty as __p::Published>::ENDPOINTS, ephemeral: true }
            }
        };
    })
}
