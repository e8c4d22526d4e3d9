//! The validated view of the entity struct the macros work from.

use proc_macro2::{Span, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Attribute, Fields, Ident, Item, ItemStruct, Type};

pub struct Field {
    pub ident: Ident,
    pub ty: Type,
}

/// A SeaORM `Model` struct with named fields and one primary-key field.
pub struct Entity {
    pub fields: Vec<Field>,
    pub primary_key: usize,
}

impl Entity {
    /// The field called `name` (a raw identifier matches without its `r#`).
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.ident.unraw() == name)
    }

    pub fn primary_key(&self) -> &Field {
        &self.fields[self.primary_key]
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
pub fn not_a_struct(item: &Item, macro_name: &str) -> syn::Error {
    let message = |what: &str| {
        format!("#[{macro_name}] goes on the `Model` struct of a SeaORM entity, not on {what}")
    };
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

pub fn entity(item: &ItemStruct, macro_name: &str) -> syn::Result<Entity> {
    if item.ident != "Model" {
        return Err(syn::Error::new(
            item.ident.span(),
            format!(
                "#[{macro_name}] goes on the `Model` struct of a SeaORM entity (the one with \
                 #[derive(DeriveEntityModel)]), found `{}`",
                item.ident
            ),
        ));
    }
    let Fields::Named(named) = &item.fields else {
        let what = match item.fields {
            Fields::Unnamed(_) => "a tuple struct",
            _ => "a unit struct",
        };
        return Err(syn::Error::new(
            item.ident.span(),
            format!(
                "#[{macro_name}] needs the `Model` struct of a SeaORM entity, with named fields; \
                 found {what}"
            ),
        ));
    };
    let mut fields = Vec::new();
    let mut primary_key = None;
    for f in &named.named {
        let ident = f.ident.clone().expect("named fields have names");
        if is_primary_key(f) {
            if primary_key.is_some() {
                return Err(syn::Error::new(
                    ident.span(),
                    format!(
                        "#[{macro_name}] needs a single-column primary key; `{ident}` is a second \
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
                "#[{macro_name}] needs a primary key to identify instances: mark one field with \
                 #[sea_orm(primary_key)]"
            ),
        ));
    };
    Ok(Entity {
        fields,
        primary_key,
    })
}
