//! `#[publish]`: parse → validate → generate `Published` and the `ActiveModelBehavior` hooks.
//!
//! One `#[publish(...)]` per endpoint; stacked ones publish the same model to several endpoints
//! (API versions, other apps), each with its own attributes and type name.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Ident, ItemStruct, LitStr};

use crate::args::{self, Args};
use crate::kind::MacroKind;
use crate::model::{self, Entity};

/// One checked `#[publish(...)]`: an endpoint and what is sent to it.
pub struct Endpoint {
    pub endpoint: LitStr,
    /// The type chain, most specific first: `as` (or the endpoint's model in UpperCamelCase),
    /// then `extends`.
    pub types: Vec<LitStr>,
    pub attributes: Vec<Attribute>,
}

pub enum Attribute {
    /// A field, with its type as written.
    Field(Ident, String),
    /// Any other name: a method of the model.
    Virtual(Ident),
}

impl Attribute {
    pub fn ident(&self) -> &Ident {
        match self {
            Attribute::Field(i, _) | Attribute::Virtual(i) => i,
        }
    }

    pub fn name(&self) -> LitStr {
        let i = self.ident();
        LitStr::new(&i.unraw().to_string(), i.span())
    }

    /// The attribute's Rust type, for exported definitions ("" for a virtual attribute).
    pub fn rust_type(&self) -> &str {
        match self {
            Attribute::Field(_, ty) => ty,
            Attribute::Virtual(_) => "",
        }
    }
}

/// Parses and checks one `#[publish(...)]` (or `#[ephemeral(...)]`) argument list against the
/// struct's fields; `extra` lists further options the caller handles.
pub fn endpoint(
    args: &TokenStream,
    entity_fields: &dyn Fn(&str) -> Option<String>,
    kind: MacroKind,
    extra: &[&str],
) -> syn::Result<(Endpoint, args::Split)> {
    let parsed: Args = syn::parse2(args.clone())?;
    let mut options = vec!["to", "as", "extends"];
    options.extend_from_slice(extra);
    let split = args::split(parsed, &options, &[])?;
    let Some(to) = split.option("to").cloned() else {
        return Err(args::missing(
            args,
            &format!("{kind} needs the endpoint to publish to: add `to = \"app/model\"`"),
        ));
    };
    let endpoint_value = args::endpoint(&to, "to")?;
    let mut types = match split.option("as") {
        Some(lit) => args::type_names(lit, "as")?,
        None => {
            let default = promiscuous_protocol::default_type(&endpoint_value);
            vec![LitStr::new(&default, to.span())]
        }
    };
    if let Some(lit) = split.option("extends") {
        for parent in args::type_names(lit, "extends")? {
            if types.iter().any(|t| t.value() == parent.value()) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("type `{}` appears twice in the type chain", parent.value()),
                ));
            }
            types.push(parent);
        }
    }
    let attributes = split
        .attributes
        .iter()
        .cloned()
        .map(|name| {
            if split.methods.contains(&name) {
                return Attribute::Virtual(name);
            }
            match entity_fields(&name.unraw().to_string()) {
                Some(ty) => Attribute::Field(name, ty),
                None => Attribute::Virtual(name),
            }
        })
        .collect();
    Ok((
        Endpoint {
            endpoint: to,
            types,
            attributes,
        },
        split,
    ))
}

/// Checks that no endpoint is published twice.
pub fn distinct(endpoints: &[Endpoint]) -> syn::Result<()> {
    let mut seen = BTreeSet::new();
    for e in endpoints {
        if !seen.insert(e.endpoint.value()) {
            return Err(syn::Error::new(
                e.endpoint.span(),
                format!(
                    "endpoint {:?} is published twice by this model",
                    e.endpoint.value()
                ),
            ));
        }
    }
    Ok(())
}

/// A checked `#[publish]`, stacked ones included.
struct Publish {
    endpoints: Vec<Endpoint>,
    entity: Entity,
}

fn validate(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<Publish> {
    let entity = model::entity(item, MacroKind::Publish)?;
    let fields = |name: &str| entity.field(name).map(|f| model::type_text(&f.ty));
    let mut endpoints = Vec::new();
    for args in &all_args {
        endpoints.push(endpoint(args, &fields, MacroKind::Publish, &[])?.0);
    }
    distinct(&endpoints)?;
    Ok(Publish { endpoints, entity })
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

/// `path` with its last segment spanned at `span`: `Type::method(self)` errors point there.
fn respanned(path: &syn::Path, span: proc_macro2::Span) -> syn::Path {
    let mut path = path.clone();
    if let Some(last) = path.segments.last_mut() {
        last.ident.set_span(span);
    }
    path
}

/// `Published::ENDPOINTS` and `Published::published_attributes` for `endpoints` of `ty`.
pub fn published_impl(ty: &syn::Path, endpoints: &[Endpoint], id: &Ident) -> TokenStream {
    let defs = endpoints.iter().map(|e| {
        let endpoint = &e.endpoint;
        let types = &e.types;
        let attributes = e.attributes.iter().map(|a| {
            let name = a.name();
            let rust_type = a.rust_type();
            quote! { __p::PublishedAttribute { name: #name, rust_type: #rust_type } }
        });
        quote! {
            __p::Endpoint {
                endpoint: #endpoint,
                types: &[#(#types),*],
                attributes: &[#(#attributes),*],
            }
        }
    });
    let arms = endpoints.iter().enumerate().map(|(n, e)| {
        let inserts = e.attributes.iter().map(|a| {
            let name = a.name();
            match a {
                Attribute::Field(i, _) => {
                    quote! { attributes.insert(#name.to_string(), __p::serde_json::to_value(&self.#i)?); }
                }
                // `Type::name(self)`: an unknown name fails here, spanned at the attribute.
                Attribute::Virtual(i) => {
                    let ty = respanned(ty, i.span());
                    quote! { attributes.insert(#name.to_string(), __p::serde_json::to_value(&#ty::#i(self))?); }
                }
            }
        });
        quote! { #n => { #(#inserts)* } }
    });
    quote! {
        impl __p::Published for #ty {
            const ENDPOINTS: &'static [__p::Endpoint] = &[#(#defs),*];

            fn publisher_id(&self) -> ::core::result::Result<__p::serde_json::Value, __p::serde_json::Error> {
                __p::serde_json::to_value(&self.#id)
            }

            fn published_attributes(
                &self,
                endpoint: usize,
            ) -> ::core::result::Result<__p::serde_json::Map<::std::string::String, __p::serde_json::Value>, __p::serde_json::Error> {
                let mut attributes = __p::serde_json::Map::new();
                match endpoint {
                    #(#arms)*
                    _ => {}
                }
                ::core::result::Result::Ok(attributes)
            }
        }
    }
}

pub fn expand(all_args: Vec<TokenStream>, item: &ItemStruct) -> syn::Result<TokenStream> {
    let p = validate(all_args, item)?;
    let pk = &p.entity.primary_key()?.ident;
    Ok(generate(&TokenStream::new(), &p.endpoints, pk))
}

/// The code for a model published to `endpoints`: `Published`, its registrations (read tracking,
/// write guard, exported definitions) and the `ActiveModelBehavior` hooks. `module` is the path
/// prefix of the entity's module (`user::`, or nothing for `#[publish]` on the struct itself);
/// `pk` its primary key field.
pub fn generate(module: &TokenStream, endpoints: &[Endpoint], pk: &Ident) -> TokenStream {
    let model: syn::Path = syn::parse_quote!(#module Model);
    let published = published_impl(&model, endpoints, pk);
    let first = &endpoints[0].endpoint;
    quote! {
        const _: () = {
            use ::promiscuous::__private as __p;
            use __p::sea_orm::{ConnectionTrait, DbErr};

            #published

            // Lets `promiscuous::tracked` connections recognise rows of this model, and the write
            // guard find its table.
            fn __promiscuous_table() -> &'static str {
                __p::sea_orm::EntityName::table_name(&#module Entity)
            }

            fn __promiscuous_keys(row: &__p::sea_orm::QueryResult, prefix: &str) -> ::std::vec::Vec<::std::string::String> {
                match <#module Model as __p::sea_orm::FromQueryResult>::from_query_result(row, prefix) {
                    ::core::result::Result::Ok(model) => __p::instance_keys(&model),
                    ::core::result::Result::Err(_) => ::std::vec::Vec::new(),
                }
            }

            __p::inventory::submit! {
                __p::PublishedEntity { table: __promiscuous_table, keys_of: __promiscuous_keys }
            }

            __p::inventory::submit! {
                __p::Definition { endpoints: <#module Model as __p::Published>::ENDPOINTS, ephemeral: false }
            }

            #[__p::async_trait]
            impl __p::sea_orm::ActiveModelBehavior for #module ActiveModel {
                async fn before_save<C>(self, db: &C, _insert: bool) -> ::core::result::Result<Self, DbErr>
                where
                    C: ConnectionTrait,
                {
                    __p::before_write(db, #first, __promiscuous_table()).await?;
                    ::core::result::Result::Ok(self)
                }

                async fn after_save<C>(model: #module Model, db: &C, insert: bool) -> ::core::result::Result<#module Model, DbErr>
                where
                    C: ConnectionTrait,
                {
                    __p::record_save(&model, db, insert, __promiscuous_table()).await?;
                    ::core::result::Result::Ok(model)
                }

                async fn before_delete<C>(self, db: &C) -> ::core::result::Result<Self, DbErr>
                where
                    C: ConnectionTrait,
                {
                    __p::before_write(db, #first, __promiscuous_table()).await?;
                    __p::before_destroy(&self, db, __promiscuous_table()).await?;
                    ::core::result::Result::Ok(self)
                }

                async fn after_delete<C>(self, db: &C) -> ::core::result::Result<Self, DbErr>
                where
                    C: ConnectionTrait,
                {
                    let id = match self.#pk.try_as_ref() {
                        ::core::option::Option::Some(v) => __p::serde_json::to_value(v)
                            .map_err(|e| DbErr::Custom(::std::format!("promiscuous: {}: serializing the primary key: {}", #first, e)))?,
                        ::core::option::Option::None => {
                            return ::core::result::Result::Err(DbErr::Custom(::std::format!(
                                "promiscuous: {}: cannot publish a delete whose ActiveModel has no primary key value",
                                #first
                            )));
                        }
                    };
                    __p::record_destroy::<#module Model, C>(id, db, __promiscuous_table()).await?;
                    ::core::result::Result::Ok(self)
                }
            }
        };
    }
}
