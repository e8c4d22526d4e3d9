//! The validated view of the entity struct the macros work from.

use proc_macro2::TokenTree;
use syn::{Fields, Ident, ItemStruct, Type};

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
    pub fn field(&self, name: &Ident) -> Option<&Field> {
        self.fields.iter().find(|f| &f.ident == name)
    }

    pub fn primary_key(&self) -> &Field {
        &self.fields[self.primary_key]
    }
}

fn is_primary_key(field: &syn::Field) -> bool {
    field.attrs.iter().any(|attr| {
        attr.path().is_ident("sea_orm")
            && attr.meta.require_list().is_ok_and(|list| {
                list.tokens.clone().into_iter().any(|t| matches!(&t, TokenTree::Ident(i) if i == "primary_key"))
            })
    })
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
        return Err(syn::Error::new(
            item.ident.span(),
            format!("#[{macro_name}] needs a struct with named fields"),
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
