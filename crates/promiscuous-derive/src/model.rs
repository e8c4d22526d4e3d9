//! The validated view of the entity struct the macros work from.

use proc_macro2::{Span, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Attribute, Fields, Ident, Item, ItemStruct, Type};

use crate::kind::MacroKind;

pub struct Field {
    pub ident: Ident,
    pub ty: Type,
}

/// A struct with named fields: a SeaORM `Model` with one primary-key field ([`entity`]), or a
/// plain struct ([`named_struct`], for ephemerals and observers).
pub struct Entity {
    pub name: Ident,
    pub fields: Vec<Field>,
    pub primary_key: Option<usize>,
}

impl Entity {
    /// The field called `name` (a raw identifier matches without its `r#`).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.ident.unraw() == name)
    }

    /// The primary key field ([`entity`] makes sure there is one).
    pub fn primary_key(&self) -> syn::Result<&Field> {
        self.primary_key
            .and_then(|i| self.fields.get(i))
            .ok_or_else(|| {
                syn::Error::new(
                    self.name.span(),
                    "a primary key is needed: mark one field with #[sea_orm(primary_key)]",
                )
            })
    }
}

/// Whether one of `attrs` is `#[sea_orm(..., word, ...)]`.
fn has_sea_orm(attrs: &[Attribute], word: &str) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("sea_orm")
            && attr.meta.require_list().is_ok_and(|list| {
                list.tokens
                    .clone()
                    .into_iter()
                    .any(|t| matches!(&t, TokenTree::Ident(i) if i == word))
            })
    })
}

fn is_primary_key(field: &syn::Field) -> bool {
    has_sea_orm(&field.attrs, "primary_key")
}

/// Whether the struct is a `#[derive(DeriveEntityModel)]` entity, so that `ActiveModel` exists.
///
/// An attribute macro placed after `#[derive(...)]` does not see the derive, but the derive's
/// helper `#[sea_orm(table_name = "...")]` stays on the struct (and without a SeaORM derive it
/// would not compile anyway).
pub fn derives_entity_model(item: &ItemStruct) -> bool {
    has_sea_orm(&item.attrs, "table_name")
}

/// The error for an item that is not a struct, spanned at its keyword and name.
pub fn not_a_struct(item: &Item, kind: MacroKind) -> syn::Error {
    let target = kind.target();
    let message = |what: &str| format!("{kind} goes on {target}, not on {what}");
    match item {
        Item::Enum(e) => {
            let (keyword, name) = (&e.enum_token, &e.ident);
            syn::Error::new_spanned(quote!(#keyword #name), message("an enum"))
        }
        Item::Union(u) => {
            let (keyword, name) = (&u.union_token, &u.ident);
            syn::Error::new_spanned(quote!(#keyword #name), message("a union"))
        }
        Item::Fn(f) => {
            let (keyword, name) = (&f.sig.fn_token, &f.sig.ident);
            syn::Error::new_spanned(quote!(#keyword #name), message("a function"))
        }
        _ => syn::Error::new(Span::call_site(), message("this item")),
    }
}

pub fn entity(item: &ItemStruct, kind: MacroKind) -> syn::Result<Entity> {
    if item.ident != "Model" {
        return Err(syn::Error::new(
            item.ident.span(),
            format!(
                "{kind} goes on the `Model` struct of a SeaORM entity (the one with \
                 #[derive(DeriveEntityModel)]), found `{}`",
                item.ident
            ),
        ));
    }
    let named = named_fields(item, kind, "the `Model` struct of a SeaORM entity")?;
    let mut fields = Vec::new();
    let mut primary_key = None;
    for f in &named.named {
        let Some(ident) = f.ident.clone() else {
            continue;
        };
        if is_primary_key(f) {
            if primary_key.is_some() {
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "{kind} needs a single-column primary key; `{ident}` is a second \
                         #[sea_orm(primary_key)] field"
                    ),
                ));
            }
            primary_key = Some(fields.len());
        }
        fields.push(Field {
            ident,
            ty: f.ty.clone(),
        });
    }
    let Some(primary_key) = primary_key else {
        return Err(syn::Error::new(
            item.ident.span(),
            format!(
                "{kind} needs a primary key to identify instances: mark one field with \
                 #[sea_orm(primary_key)]"
            ),
        ));
    };
    Ok(Entity {
        name: item.ident.clone(),
        fields,
        primary_key: Some(primary_key),
    })
}

fn named_fields<'a>(
    item: &'a ItemStruct,
    kind: MacroKind,
    what_is_needed: &str,
) -> syn::Result<&'a syn::FieldsNamed> {
    match &item.fields {
        Fields::Named(named) => Ok(named),
        other => {
            let what = match other {
                Fields::Unnamed(_) => "a tuple struct",
                _ => "a unit struct",
            };
            Err(syn::Error::new(
                item.ident.span(),
                format!("{kind} needs {what_is_needed}, with named fields; found {what}"),
            ))
        }
    }
}

/// Any struct with named fields (no primary key needed).
pub fn named_struct(item: &ItemStruct, kind: MacroKind) -> syn::Result<Entity> {
    let named = named_fields(item, kind, "a struct")?;
    let fields = named
        .named
        .iter()
        .filter_map(|f| {
            f.ident.clone().map(|ident| Field {
                ident,
                ty: f.ty.clone(),
            })
        })
        .collect();
    Ok(Entity {
        name: item.ident.clone(),
        fields,
        primary_key: None,
    })
}

/// A type as written, without the spaces tokens add (`Option<String>`), for exported
/// definitions.
pub fn type_text(ty: &Type) -> String {
    quote!(#ty).to_string().replace(' ', "")
}
