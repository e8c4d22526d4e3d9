//! `#[publish]` and `#[subscribe]`: attribute macros for SeaORM entity models.
//!
//! Each macro follows the same three steps, in its own module:
//! [`args`] parses the attribute, [`model`] validates it against the struct into a checked model,
//! and [`publish`] / [`subscribe`] generate code from that model only. Every problem is a
//! `syn::Error` spanned at its cause; after an error the struct is still emitted unchanged
//! (with the error, and for `#[publish]` the plain `ActiveModelBehavior` the entity then lacks),
//! so the user sees that one message and not a cascade.

mod args;
mod model;
mod publish;
mod subscribe;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens;

/// Publishes the model's writes: `#[publish(attr, ..., to = "app/model")]`.
///
/// Attributes are fields of the struct or, for any other name, methods of the model
/// (virtual attributes) returning a `Serialize` value. Options: `to` (required, the endpoint)
/// and `as = "Type"` (the type name sent; defaults to the endpoint's model in UpperCamelCase).
///
/// Generates `Published` for `Model` and the `ActiveModelBehavior` of `ActiveModel` (do not
/// write your own): every insert, update, save and delete through an `ActiveModel` or `Model`
/// writes its operation to the outbox in the caller's transaction.
#[proc_macro_attribute]
pub fn publish(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        "publish",
        args.into(),
        item.into(),
        publish::expand,
        publish::on_error,
    )
    .into()
}

/// Keeps the model in sync with a publisher's endpoint:
/// `#[subscribe(attr, ..., from = "app/model", foreign_key = "column")]`.
///
/// Attributes must be fields of the struct. Options: `from` (required), `foreign_key` (the
/// column holding the publisher's id; defaults to the primary key) and `callbacks` (you
/// implement `promiscuous::Callbacks` for `Model` yourself; otherwise an empty impl is made).
#[proc_macro_attribute]
pub fn subscribe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        "subscribe",
        args.into(),
        item.into(),
        subscribe::expand,
        |_| TokenStream2::new(),
    )
    .into()
}

/// Parse → validate → generate with `generate`; on an error, the item unchanged, the error, and
/// what `on_error` adds so that the error stays the only one.
fn expand(
    macro_name: &str,
    args: TokenStream2,
    item: TokenStream2,
    generate: fn(TokenStream2, &syn::ItemStruct) -> syn::Result<TokenStream2>,
    on_error: fn(&syn::ItemStruct) -> TokenStream2,
) -> TokenStream2 {
    let parsed = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => s,
        Ok(other) => return dummy(item, model::not_a_struct(&other, macro_name)),
        Err(err) => return dummy(item, err),
    };
    match generate(args, &parsed) {
        Ok(generated) => {
            let mut out = parsed.into_token_stream();
            out.extend(generated);
            out
        }
        Err(err) => {
            let mut out = dummy(item, err);
            out.extend(on_error(&parsed));
            out
        }
    }
}

/// The item unchanged plus the error: one message, no cascade of "cannot find Model".
fn dummy(item: TokenStream2, err: syn::Error) -> TokenStream2 {
    let mut out = item;
    out.extend(err.to_compile_error());
    out
}
