//! `#[publish]` and `#[subscribe]`: attribute macros for SeaORM entity models.
//!
//! Each macro follows the same three steps, in its own module:
//! `args` parses the attribute, `model` validates it against the struct into a checked model,
//! and [`publish`] / [`subscribe`] generate code from that model only. Every problem is a
//! `syn::Error` spanned at its cause; after an error the struct is still emitted unchanged
//! (with the error, and for `#[publish]` the plain `ActiveModelBehavior` the entity then lacks),
//! so the user sees that one message and not a cascade.

mod args;
mod define;
mod definitions;
mod ephemeral;
mod kind;
mod model;
mod observer;
mod publish;
mod subscribe;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::ToTokens;

use kind::MacroKind;

/// Publishes the model's writes: `#[publish(attr, ..., to = "app/model")]`.
///
/// Attributes are fields of the struct or, for any other name, methods of the model
/// (virtual attributes) returning a `Serialize` value. Options: `to` (required, the endpoint),
/// `as = "Type"` (the type name sent; defaults to the endpoint's model in UpperCamelCase) and
/// `extends = "Parent, Grandparent"` (the rest of the type chain, for polymorphism). Stack
/// several `#[publish(...)]` to publish the model to several endpoints (API versions), each
/// with its own attributes.
///
/// Generates `Published` for `Model` and the `ActiveModelBehavior` of `ActiveModel` (do not
/// write your own): every insert, update, save and delete through an `ActiveModel` or `Model`
/// writes its operations to the outbox in the caller's transaction.
#[proc_macro_attribute]
pub fn publish(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        MacroKind::Publish,
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
/// column holding the publisher's id; defaults to the primary key), `as = "Type"` (follow one
/// type of a polymorphic endpoint: an operation goes to the nearest type of its chain that is
/// followed, else to the subscriptions without `as`), `definitions = "file.json"` (check at
/// compile time that `from`, `as` and the attributes are published, against the publisher's
/// exported definitions) and `callbacks` (you implement `promiscuous::Callbacks` for `Model`
/// yourself; otherwise an empty impl is made). Stack several `#[subscribe(...)]` to follow
/// several publishers into one model.
#[proc_macro_attribute]
pub fn subscribe(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        MacroKind::Subscribe,
        args.into(),
        item.into(),
        subscribe::expand,
        |_| TokenStream2::new(),
    )
    .into()
}

/// Publishes a plain struct that is never stored by the publisher (an event):
/// `#[ephemeral(attr, ..., to = "app/model", id = "field")]`.
///
/// Attributes are fields or methods, as with `#[publish]`; `id` names the field holding the
/// instance's id (default `id`); `as` and `extends` name its type chain. Generates `Published`
/// and `Ephemeral`: `event.publish(&txn).await?` writes a create to the outbox in the caller's
/// transaction. Stack several to publish to several endpoints.
#[proc_macro_attribute]
pub fn ephemeral(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        MacroKind::Ephemeral,
        args.into(),
        item.into(),
        ephemeral::expand,
        |_| TokenStream2::new(),
    )
    .into()
}

/// Runs callbacks for a publisher's operations without storing anything:
/// `#[observer(attr, ..., from = "app/model", id = "field")]` on a plain struct.
///
/// Attributes must be fields; `id` names the field receiving the publisher's id (default
/// `id`); `as` follows one type of the endpoint. Each operation builds the struct (fields it
/// does not carry, and every field but the id on a destroy, come from `Default`) and calls its
/// `promiscuous::Callbacks`, which you implement. Stack several to observe several endpoints.
#[proc_macro_attribute]
pub fn observer(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(
        MacroKind::Observer,
        args.into(),
        item.into(),
        observer::expand,
        |_| TokenStream2::new(),
    )
    .into()
}

/// The define-style alternative to the attributes: every publish and subscribe definition of a
/// service in one place, away from the entity structs.
///
/// ```ignore
/// promiscuous::define! {
///     publish(name, email, full_name(), to = "crowdtap/user") for user::Model;
///     subscribe(name, email, from = "crowdtap/user", foreign_key = "crowdtap_id") for member::Model;
/// }
/// ```
///
/// Each line takes the options of the matching attribute. The macro does not see the structs:
/// virtual attributes are written `name()`, other names are fields (an unknown one is a compile
/// error at its name), and `key = "field"` names a published model's primary key (default
/// `id`). Several lines for one model stack like the attributes do.
#[proc_macro]
pub fn define(input: TokenStream) -> TokenStream {
    define::expand(input.into()).into()
}

/// Parse → validate → generate with `generate`; on an error, the item unchanged, the error, and
/// what `on_error` adds so that the error stays the only one.
///
/// Several attributes of the same macro may be stacked on one struct (a model published to
/// several endpoints, or subscribed from several publishers): the first one expands them all,
/// in order, and removes the others from the item.
fn expand(
    kind: MacroKind,
    args: TokenStream2,
    item: TokenStream2,
    generate: fn(Vec<TokenStream2>, &syn::ItemStruct) -> syn::Result<TokenStream2>,
    on_error: fn(&syn::ItemStruct) -> TokenStream2,
) -> TokenStream2 {
    let mut parsed = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => s,
        Ok(other) => return dummy(item, model::not_a_struct(&other, kind)),
        Err(err) => return dummy(item, err),
    };
    let mut all_args = vec![args];
    all_args.extend(args::take_stacked(&mut parsed, kind));
    match generate(all_args, &parsed) {
        Ok(generated) => {
            let mut out = parsed.into_token_stream();
            out.extend(generated);
            out
        }
        Err(err) => {
            let mut out = dummy(parsed.to_token_stream(), err);
            out.extend(on_error(&parsed));
            out
        }
    }
}

/// The item plus the error: one message, no cascade of "cannot find Model".
fn dummy(item: TokenStream2, err: syn::Error) -> TokenStream2 {
    let mut out = item;
    out.extend(err.to_compile_error());
    out
}
