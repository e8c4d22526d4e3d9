//! `define!`: the define-style alternative to the `#[publish]`/`#[subscribe]` attributes, every
//! definition of a service in one place, away from the entity structs:
//!
//! ```ignore
//! promiscuous::define! {
//!     publish(name, email, full_name(), to = "crowdtap/user") for user::Model;
//!     subscribe(name, email, from = "crowdtap/user", foreign_key = "crowdtap_id") for member::Model;
//! }
//! ```
//!
//! parse → validated model → the same codegen as the attributes. The macro does not see the
//! structs, so a method (virtual attribute) is written `name()`, every other name is a field
//! (rustc reports an unknown one, at its name), field types are inferred, `key = "field"` names
//! a published model's primary key (default `id`), and exported definitions carry no Rust type
//! for these attributes.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::args::{Arg, Args};
use crate::kind::MacroKind;
use crate::model::{Entity, Field};
use crate::{publish, subscribe};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Publish,
    Subscribe,
}

/// One `publish(...) for path::Model;` line.
struct Line {
    kind: Kind,
    args: TokenStream,
    model: syn::Path,
    /// A misspelled keyword: reported, and the line taken as the nearest kind (for the dummy
    /// output that keeps the error the only one).
    misspelled: Option<syn::Error>,
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

struct Lines(Vec<Line>);

impl Parse for Lines {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut lines = Vec::new();
        while !input.is_empty() {
            let keyword: Ident = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), USAGE))?;
            let word = keyword.to_string();
            let (kind, misspelled) = match word.as_str() {
                "publish" => (Kind::Publish, None),
                "subscribe" => (Kind::Subscribe, None),
                _ => {
                    let (kind, nearest) =
                        if distance(&word, "publish") <= distance(&word, "subscribe") {
                            (Kind::Publish, "publish")
                        } else {
                            (Kind::Subscribe, "subscribe")
                        };
                    let error = syn::Error::new(
                        keyword.span(),
                        format!("unknown definition `{word}` (did you mean `{nearest}`?); {USAGE}"),
                    );
                    (kind, Some(error))
                }
            };
            let content;
            syn::parenthesized!(content in input);
            let args: TokenStream = content.parse()?;
            input
                .parse::<Token![for]>()
                .map_err(|e| syn::Error::new(e.span(), USAGE))?;
            let model: syn::Path = input.parse()?;
            input
                .parse::<Token![;]>()
                .map_err(|e| syn::Error::new(e.span(), "expected `;` after the model's path"))?;
            lines.push(Line {
                kind,
                args,
                model,
                misspelled,
            });
        }
        Ok(Lines(lines))
    }
}

const USAGE: &str = "expected `publish(attributes.., to = \"app/model\") for path::Model;` or \
                     `subscribe(attributes.., from = \"app/model\") for path::Model;`";

/// The module prefix of `path::Model` (`path::`), checking that it names a `Model`.
fn module_of(model: &syn::Path) -> syn::Result<TokenStream> {
    let last = model.segments.last().map(|s| &s.ident);
    if last.is_none_or(|i| i != "Model") || model.segments.iter().any(|s| !s.arguments.is_none()) {
        return Err(syn::Error::new_spanned(
            model,
            "define! names the `Model` struct of a SeaORM entity, as `path::to::entity::Model`",
        ));
    }
    Ok(prefix(model))
}

/// `path::` of `path::Last`.
fn prefix(model: &syn::Path) -> TokenStream {
    let mut module = TokenStream::new();
    if let Some(colon) = &model.leading_colon {
        colon.to_tokens(&mut module);
    }
    for segment in model.segments.iter().take(model.segments.len() - 1) {
        segment.ident.to_tokens(&mut module);
        quote!(::).to_tokens(&mut module);
    }
    module
}

/// A stand-in for the struct the macro cannot see: every name the lines mention is a field of
/// inferred type; `key` (the primary key) included.
fn inferred_entity(lines: &[&Line], key: &str) -> syn::Result<Entity> {
    let mut names: Vec<Ident> = vec![Ident::new(key, Span::call_site())];
    for line in lines {
        for arg in syn::parse2::<Args>(line.args.clone())?.0 {
            match arg {
                Arg::Name(i) | Arg::Method(i) => names.push(i),
                Arg::Option(k, v) if k == "foreign_key" => {
                    names.push(syn::parse_str::<Ident>(&v.value()).map_err(|_| {
                        syn::Error::new(v.span(), "`foreign_key` must name a field")
                    })?);
                }
                Arg::Option(..) => {}
            }
        }
    }
    let name = lines[0]
        .model
        .segments
        .last()
        .map(|s| s.ident.clone())
        .unwrap_or_else(|| Ident::new("Model", Span::call_site()));
    Ok(Entity {
        name,
        fields: names
            .into_iter()
            .map(|ident| Field {
                ident,
                ty: syn::parse_quote!(_),
            })
            .collect(),
        primary_key: Some(0),
    })
}

/// The lines of one model, in order, grouped by kind and model path.
fn groups(lines: &[Line]) -> Vec<(Kind, Vec<&Line>)> {
    let mut out: Vec<(Kind, String, Vec<&Line>)> = Vec::new();
    for line in lines {
        let key = line.model.to_token_stream().to_string();
        match out
            .iter_mut()
            .find(|(k, m, _)| *k == line.kind && *m == key)
        {
            Some((_, _, group)) => group.push(line),
            None => out.push((line.kind, key, vec![line])),
        }
    }
    out.into_iter().map(|(k, _, g)| (k, g)).collect()
}

/// The first misspelled keyword of a group, as its error.
fn misspelled(lines: &[&Line]) -> syn::Result<()> {
    match lines.iter().find_map(|l| l.misspelled.clone()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn publish_group(lines: &[&Line]) -> syn::Result<TokenStream> {
    misspelled(lines)?;
    let module = module_of(&lines[0].model)?;
    let mut endpoints = Vec::new();
    let mut key: Option<LitStr> = None;
    for line in lines {
        // Names not written `name()` are fields; their type is not known here.
        let (endpoint, split) = publish::endpoint(
            &line.args,
            &|_| Some(String::new()),
            MacroKind::DefinePublish,
            &["key"],
        )?;
        if let Some(k) = split.option("key") {
            if key.as_ref().is_some_and(|prev| prev.value() != k.value()) {
                return Err(syn::Error::new(
                    k.span(),
                    "every `publish` line of one model must name the same `key`",
                ));
            }
            key = Some(k.clone());
        }
        endpoints.push(endpoint);
    }
    publish::distinct(&endpoints)?;
    let pk = match &key {
        Some(lit) => syn::parse_str::<Ident>(&lit.value())
            .map(|i| Ident::new(&i.to_string(), lit.span()))
            .map_err(|_| syn::Error::new(lit.span(), "`key` must name the primary key field"))?,
        None => Ident::new("id", Span::call_site()),
    };
    Ok(publish::generate(&module, &endpoints, &pk))
}

fn subscribe_group(lines: &[&Line]) -> syn::Result<TokenStream> {
    misspelled(lines)?;
    let module = module_of(&lines[0].model)?;
    let entity = inferred_entity(lines, "id")?;
    let all_args: Vec<TokenStream> = lines.iter().map(|l| l.args.clone()).collect();
    let checked = subscribe::validate_entity(&all_args, &entity, MacroKind::DefineSubscribe)?;
    Ok(subscribe::generate(&module, &checked))
}

pub fn expand(input: TokenStream) -> TokenStream {
    let lines = match syn::parse2::<Lines>(input) {
        Ok(Lines(lines)) => lines,
        Err(e) => return e.to_compile_error(),
    };
    let mut out = TokenStream::new();
    for (kind, group) in groups(&lines) {
        let generated = match kind {
            Kind::Publish => publish_group(&group),
            Kind::Subscribe => subscribe_group(&group),
        };
        match generated {
            Ok(code) => out.extend(code),
            Err(e) => {
                out.extend(e.to_compile_error());
                // Without its hooks the entity would also lack `ActiveModelBehavior`: one error.
                if kind == Kind::Publish {
                    let module = prefix(&group[0].model);
                    out.extend(quote! {
                        impl ::promiscuous::__private::sea_orm::ActiveModelBehavior for #module ActiveModel {}
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_prefix_of_a_model_path() {
        let p: syn::Path = syn::parse_quote!(crate::user::Model);
        assert_eq!(module_of(&p).unwrap().to_string(), "crate :: user ::");
        let p: syn::Path = syn::parse_quote!(Model);
        assert!(module_of(&p).unwrap().is_empty());
        let p: syn::Path = syn::parse_quote!(user::Entity);
        assert!(module_of(&p).is_err());
    }

    #[test]
    fn lines_are_grouped_by_kind_and_model() {
        let Lines(lines) = syn::parse2(quote! {
            publish(name, to = "a/user") for user::Model;
            subscribe(name, from = "a/user") for member::Model;
            publish(name, to = "b/user") for user::Model;
        })
        .unwrap();
        let g = groups(&lines);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].1.len(), 2);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for input in [
            quote!(publish),
            quote!(publish(name) user::Model;),
            quote!(publish(name, to = "a/user") for user::Model),
        ] {
            assert!(syn::parse2::<Lines>(input).is_err());
        }
        let out = expand(quote!(publish(name, to = "a/user") for user::Entity;)).to_string();
        assert!(out.contains("compile_error"), "{out}");
        let out = expand(quote!(publsh(name, to = "a/user") for user::Model;)).to_string();
        assert!(out.contains("did you mean `publish`"), "{out}");
        assert!(out.contains("ActiveModelBehavior"), "dummy hooks: {out}");
        assert_eq!(distance("subscrbe", "subscribe"), 1);
        let out = expand(quote!(publish(name) for user::Model;)).to_string();
        assert!(out.contains("needs the endpoint"), "{out}");
    }
}
