//! Parsing `attr, attr, key = "value", flag` argument lists.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Token};

use crate::kind::MacroKind;

/// One comma-separated argument.
pub enum Arg {
    /// A bare name: an attribute, or a flag option.
    Name(Ident),
    /// `name()`: an attribute read by calling the model's method `name` (a virtual attribute).
    Method(Ident),
    /// `key = "value"`.
    Option(Ident, LitStr),
}

pub struct Args(pub Vec<Arg>);

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list = Punctuated::<Arg, Token![,]>::parse_terminated(input)?;
        Ok(Args(list.into_iter().collect()))
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `as` is a keyword: accept it as an option name.
        let name: Ident = if input.peek(Token![as]) {
            let kw: Token![as] = input.parse()?;
            Ident::new("as", kw.span)
        } else {
            input.call(syn::ext::IdentExt::parse_any).map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected an attribute name or `option = \"value\"`",
                )
            })?
        };
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            if !content.is_empty() {
                return Err(content.error(format!(
                    "a virtual attribute is written `{name}()`, without arguments"
                )));
            }
            return Ok(Arg::Method(name));
        }
        if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            let value: LitStr = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("the value of `{name}` must be a string literal"),
                )
            })?;
            Ok(Arg::Option(name, value))
        } else {
            Ok(Arg::Name(name))
        }
    }
}

/// Parsed arguments split into attributes, options and flags, each checked against what the
/// macro accepts.
pub struct Split {
    pub attributes: Vec<Ident>,
    /// The attributes written `name()`: virtual for sure.
    pub methods: Vec<Ident>,
    pub options: Vec<(Ident, LitStr)>,
    pub flags: Vec<Ident>,
}

pub fn split(args: Args, options: &[&str], flags: &[&str]) -> syn::Result<Split> {
    let mut out = Split {
        attributes: Vec::new(),
        methods: Vec::new(),
        options: Vec::new(),
        flags: Vec::new(),
    };
    let expected = || {
        options
            .iter()
            .map(|o| format!("`{o} = \"...\"`"))
            .chain(flags.iter().map(|f| format!("`{f}`")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for arg in args.0 {
        match arg {
            Arg::Option(key, value) => {
                if !options.contains(&key.to_string().as_str()) {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{key}`; expected one of {}", expected()),
                    ));
                }
                if out.options.iter().any(|(k, _)| k == &key) {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("option `{key}` is given twice"),
                    ));
                }
                out.options.push((key, value));
            }
            Arg::Name(name) if flags.contains(&name.to_string().as_str()) => out.flags.push(name),
            Arg::Name(name) | Arg::Method(name) if out.attributes.contains(&name) => {
                return Err(syn::Error::new(
                    name.span(),
                    format!("attribute `{name}` is listed twice"),
                ));
            }
            Arg::Method(name) => {
                out.methods.push(name.clone());
                out.attributes.push(name);
            }
            Arg::Name(name) => out.attributes.push(name),
        }
    }
    Ok(out)
}

impl Split {
    pub fn option(&self, key: &str) -> Option<&LitStr> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

/// Checks an endpoint literal: `"app/model"`, lowercase-friendly segments, no spaces.
pub fn endpoint(lit: &LitStr, option: &str) -> syn::Result<String> {
    let value = lit.value();
    if !promiscuous_protocol::endpoint::is_endpoint(&value) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{option}` must look like \"app/model\" (letters, digits, `_` or `-` in each segment), found {value:?}"
            ),
        ));
    }
    Ok(value)
}

/// A type name option: `as` (one name) or `extends` (names separated by commas, nearest first),
/// each as `promiscuous_protocol::is_type_name` allows (`Name`, `Name::Path`). The one check of
/// `as` for every macro.
pub fn type_names(lit: &LitStr, option: &str) -> syn::Result<Vec<LitStr>> {
    let value = lit.value();
    let names: Vec<&str> = value.split(',').map(str::trim).collect();
    if !names.iter().all(|n| promiscuous_protocol::is_type_name(n))
        || (option == "as" && names.len() != 1)
    {
        let expected = if option == "as" {
            "a type name"
        } else {
            "type names separated by commas, nearest first"
        };
        return Err(syn::Error::new(
            lit.span(),
            format!("`{option}` must be {expected}, found {value:?}"),
        ));
    }
    Ok(names
        .into_iter()
        .map(|n| LitStr::new(n, lit.span()))
        .collect())
}

/// A required option is missing: spanned at the argument list, or at the attribute when the list
/// is empty.
pub fn missing(args: &proc_macro2::TokenStream, message: &str) -> syn::Error {
    if args.is_empty() {
        syn::Error::new(proc_macro2::Span::call_site(), message)
    } else {
        syn::Error::new_spanned(args, message)
    }
}

/// Removes the other `#[kind(...)]` attributes stacked on `item` (`#[promiscuous::publish]`
/// as well as a bare `#[publish]`) and returns their argument lists, in order.
pub fn take_stacked(item: &mut syn::ItemStruct, kind: MacroKind) -> Vec<proc_macro2::TokenStream> {
    let mut stacked = Vec::new();
    item.attrs.retain(|attr| {
        let ours = attr
            .path()
            .segments
            .last()
            .is_some_and(|s| s.ident == kind.name());
        if ours {
            stacked.push(match &attr.meta {
                syn::Meta::List(list) => list.tokens.clone(),
                _ => proc_macro2::TokenStream::new(),
            });
        }
        !ours
    });
    stacked
}
