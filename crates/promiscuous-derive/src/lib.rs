//! `#[publish]` and `#[subscribe]`: attribute macros for SeaORM entity models.
//!
//! Each macro follows the same three steps, in its own module:
//! [`args`] parses the attribute, [`model`] validates it against the struct into a checked model,
//! and [`publish`] / [`subscribe`] generate code from that model only. Every problem is a
//! `syn::Error` spanned at its cause; after an error the struct is still emitted unchanged
//! (with the error), so the user sees that one message and not a cascade.

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
    expand(args.into(), item.into(), publish::expand).into()
}

/// Keeps the model in sync with a publisher's endpoint:
/// `#[subscribe(attr, ..., from = "app/model", foreign_key = "column")]`.
///
/// Attributes must be fields of the struct. Options: `from` (required), `foreign_key` (the
/// column holding the publisher's id; defaults to the primary key) and `callbacks` (you
/// implement `promiscuous::Callbacks` for `Model` yourself; otherwise an empty impl is made).
#[proc_macro_attribute]
pub fn subscribe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args.into(), item.into(), subscribe::expand).into()
}

fn expand(
    args: TokenStream2,
    item: TokenStream2,
    f: fn(TokenStream2, &syn::ItemStruct) -> syn::Result<TokenStream2>,
) -> TokenStream2 {
    let parsed: syn::ItemStruct = match syn::parse2(item.clone()) {
        Ok(s) => s,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                "promiscuous: #[publish] and #[subscribe] go on the `Model` struct of a SeaORM entity",
            );
            return dummy(item, err);
        }
    };
    match f(args, &parsed) {
        Ok(generated) => {
            let mut out = parsed.into_token_stream();
            out.extend(generated);
            out
        }
        Err(err) => dummy(item, err),
    }
}

/// The item unchanged plus the error: one message, no cascade of "cannot find Model".
fn dummy(item: TokenStream2, err: syn::Error) -> TokenStream2 {
    let mut out = item;
    out.extend(err.to_compile_error());
    out
}
