//! `#[sluice::task]`: keeps the function as it is and adds, beside it, a module of the same name
//! whose `Task` describes and runs it (functions and modules live in different namespaces).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, LitBool, LitInt, LitStr, Pat, ReturnType, Type};

#[derive(Default)]
struct Settings {
    name: Option<String>,
    cache: Option<String>,
    ignored_inputs: Vec<String>,
    serialize: bool,
    cache_max_age_ms: Option<u64>,
    cache_global: bool,
    retries: u32,
    backoff_ms: u64,
    timeout_ms: Option<u64>,
    inline_limit: Option<u64>,
    memory_limit: Option<u64>,
}

fn parse_settings(attr: TokenStream) -> syn::Result<Settings> {
    let mut s = Settings::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match key.as_str() {
            "name" => s.name = Some(meta.value()?.parse::<LitStr>()?.value()),
            "cache" => s.cache = Some(meta.value()?.parse::<LitStr>()?.value()),
            "ignored_inputs" => {
                let list = meta.value()?.parse::<LitStr>()?.value();
                s.ignored_inputs = list
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect();
            }
            "serialize" => s.serialize = meta.value()?.parse::<LitBool>()?.value,
            "cache_max_age" => {
                let text = meta.value()?.parse::<LitStr>()?;
                s.cache_max_age_ms = Some(parse_age_ms(&text.value()).ok_or_else(|| {
                    syn::Error::new(
                        text.span(),
                        "cache_max_age: expected a number and a unit: ms, s, m, h or d (\"30d\")",
                    )
                })?);
            }
            "cache_scope" => {
                let text = meta.value()?.parse::<LitStr>()?;
                s.cache_global = match text.value().as_str() {
                    "global" => true,
                    "project" | "project-domain" => false,
                    _ => {
                        return Err(syn::Error::new(
                            text.span(),
                            "cache_scope: expected \"project\" or \"global\"",
                        ))
                    }
                };
            }
            "retries" => s.retries = meta.value()?.parse::<LitInt>()?.base10_parse()?,
            "backoff_ms" => s.backoff_ms = meta.value()?.parse::<LitInt>()?.base10_parse()?,
            "timeout_ms" => s.timeout_ms = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?),
            "inline_limit" => {
                s.inline_limit = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?)
            }
            "memory_limit" => {
                s.memory_limit = Some(meta.value()?.parse::<LitInt>()?.base10_parse()?)
            }
            _ => {
                return Err(meta.error(
                    "unknown sluice::task setting (known: name, cache, ignored_inputs, \
                     serialize, cache_max_age, cache_scope, retries, backoff_ms, timeout_ms, inline_limit, memory_limit)",
                ))
            }
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(s)
}

/// `"90s"`, `"30d"`, ... as milliseconds.
fn parse_age_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

fn doc_of(item: &ItemFn) -> Option<String> {
    let lines: Vec<String> = item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let doc = lines.join("\n").trim().to_string();
    (!doc.is_empty()).then_some(doc)
}

/// `Result<T, E>` (or `sluice::Result<T>`): the success type and the error type, if any.
fn split_result(ty: &Type) -> Option<(Type, Option<Type>)> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    Some((ok, types.next()))
}

fn outputs_of(ty: &Type) -> Vec<Type> {
    match ty {
        Type::Tuple(t) => t.elems.iter().cloned().collect(),
        other => vec![other.clone()],
    }
}

fn option_u64(v: Option<u64>) -> TokenStream {
    match v {
        Some(n) => quote! { ::std::option::Option::Some(#n) },
        None => quote! { ::std::option::Option::None },
    }
}

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let settings = parse_settings(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            sig,
            "sluice::task: the function must be neither async nor generic",
        ));
    }
    let fn_ident = &sig.ident;
    let vis = &func.vis;
    let task_name = settings
        .name
        .clone()
        .unwrap_or_else(|| fn_ident.to_string());

    let mut input_idents = Vec::new();
    let mut input_types = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new_spanned(
                arg,
                "sluice::task: no `self` inputs",
            ));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new_spanned(
                &pt.pat,
                "sluice::task: each input must be a plain `name: Type`",
            ));
        };
        input_idents.push(pi.ident.clone());
        input_types.push((*pt.ty).clone());
    }
    let input_names: Vec<String> = input_idents
        .iter()
        .map(|i| i.to_string().trim_start_matches("r#").to_string())
        .collect();

    let (success, error) = match &sig.output {
        ReturnType::Default => (None, None),
        ReturnType::Type(_, ty) => match split_result(ty) {
            Some((ok, err)) => (Some(ok), Some(err)),
            None => (Some((**ty).clone()), None),
        },
    };
    let output_types: Vec<Type> = success.as_ref().map(outputs_of).unwrap_or_default();
    let output_idents: Vec<_> = (0..output_types.len())
        .map(|i| format_ident!("o{}", i))
        .collect();
    let output_names: Vec<String> = output_idents.iter().map(|i| i.to_string()).collect();

    let call = quote! { super::#fn_ident(#(#input_idents),*) };
    let call = match error {
        None => call,
        Some(_) => quote! {
            #call.map_err(|e| ::sluice::__private::user_error(::std::convert::Into::into(e)))?
        },
    };
    let bind_outputs = match (&success, output_types.len()) {
        (None, _) => quote! { let () = #call; },
        (Some(Type::Tuple(_)), _) => quote! { let (#(#output_idents),*) = #call; },
        (Some(_), _) => quote! { let o0 = #call; },
    };

    let cache_version = match settings.cache.as_deref() {
        None | Some("disable") => quote! { CacheVersion::Disable },
        Some("auto") => quote! { CacheVersion::Auto },
        Some(v) => quote! { CacheVersion::Override(::std::string::String::from(#v)) },
    };
    let ignored = &settings.ignored_inputs;
    for name in ignored {
        if !input_names.contains(name) {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("sluice::task: ignored input {name:?} is not an input of {task_name}"),
            ));
        }
    }
    let serialize = settings.serialize;
    let cache_max_age = option_u64(settings.cache_max_age_ms);
    let cache_scope = if settings.cache_global {
        quote! { ::sluice::__private::CacheScope::Global }
    } else {
        quote! { ::sluice::__private::CacheScope::ProjectDomain }
    };
    let retries = settings.retries;
    let backoff_ms = settings.backoff_ms;
    let timeout_ms = option_u64(settings.timeout_ms);
    let inline_limit = option_u64(settings.inline_limit);
    let memory_limit = option_u64(settings.memory_limit);
    let doc = match doc_of(&func) {
        Some(d) => quote! { ::std::option::Option::Some(::std::string::String::from(#d)) },
        None => quote! { ::std::option::Option::None },
    };
    let calls = call_api(&input_idents, &input_types, &output_types);
    let output_lifetimes = if output_types.is_empty() {
        quote! {}
    } else {
        quote! { <'a> }
    };

    Ok(quote! {
        #func

        #[doc(hidden)]
        #vis mod #fn_ident {
            #[allow(unused_imports)]
            use super::*;
            use ::sluice::__private::{CacheVersion, TaskDef, TaskError};

            pub struct Task;

            #[derive(::sluice::__private::serde::Deserialize)]
            #[serde(crate = "::sluice::__private::serde")]
            struct Inputs {
                #(#input_idents: #input_types,)*
            }

            #[derive(::sluice::__private::serde::Serialize)]
            #[serde(crate = "::sluice::__private::serde")]
            struct Outputs #output_lifetimes {
                #(#output_idents: &'a #output_types,)*
            }

            #calls

            impl TaskDef for Task {
                const NAME: &'static str = #task_name;

                fn spec() -> ::sluice::__private::TaskSpec {
                    let mut table = ::sluice::TypeTable::new();
                    let inputs = ::std::vec![#(::sluice::__private::Param {
                        name: ::std::string::String::from(#input_names),
                        doc: ::std::option::Option::None,
                        ty: table.of::<#input_types>(),
                    }),*];
                    let outputs = ::std::vec![#(::sluice::__private::Param {
                        name: ::std::string::String::from(#output_names),
                        doc: ::std::option::Option::None,
                        ty: table.of::<#output_types>(),
                    }),*];
                    ::sluice::__private::TaskSpec {
                        name: ::std::string::String::from(#task_name),
                        doc: #doc,
                        types: table.into_nodes(),
                        inputs,
                        outputs,
                        cache: ::sluice::__private::CachePolicy {
                            version: #cache_version,
                            ignored_inputs: ::std::vec![#(::std::string::String::from(#ignored)),*],
                            serialize: #serialize,
                            max_age_ms: #cache_max_age,
                            scope: #cache_scope,
                        },
                        retry: ::sluice::__private::RetryPolicy {
                            retries: #retries,
                            backoff_ms: #backoff_ms,
                        },
                        timeout_ms: #timeout_ms,
                        inline_limit_bytes: #inline_limit,
                        memory_limit_bytes: #memory_limit,
                    }
                }

                fn run(inputs: &[u8]) -> ::std::result::Result<::std::vec::Vec<u8>, TaskError> {
                    let Inputs { #(#input_idents),* } =
                        ::sluice::__private::decode_inputs(Self::NAME, inputs)?;
                    #bind_outputs
                    ::sluice::__private::encode_outputs(
                        Self::NAME,
                        &Outputs { #(#output_idents: &#output_idents),* },
                    )
                }
            }
        }
    })
}

/// The typed calls generated beside a task: `call`, `submit` and `map` (see `sluice::tasks`).
/// Each bound is written `for<'__s> T: Trait` so it is checked where a call is made: a task
/// whose types cannot be encoded or decoded by a caller still compiles, it just cannot be
/// called from Rust.
fn call_api(
    input_idents: &[syn::Ident],
    input_types: &[Type],
    output_types: &[Type],
) -> TokenStream {
    let in_params: Vec<_> = (0..input_types.len())
        .map(|i| format_ident!("__I{}", i))
        .collect();
    let out_params: Vec<_> = (0..output_types.len())
        .map(|i| format_ident!("__O{}", i))
        .collect();
    let out_idents: Vec<_> = (0..output_types.len())
        .map(|i| format_ident!("o{}", i))
        .collect();
    let in_generics = if in_params.is_empty() {
        quote! {}
    } else {
        quote! { <#(#in_params),*> }
    };
    let out_generics = if out_params.is_empty() {
        quote! {}
    } else {
        quote! { <#(#out_params),*> }
    };
    let out_value = match output_types.len() {
        0 => quote! { () },
        1 => quote! { o0 },
        _ => quote! { (#(#out_idents),*) },
    };
    let out_type = match output_types.len() {
        0 => quote! { () },
        1 => {
            let t = &output_types[0];
            quote! { #t }
        }
        _ => quote! { (#(#output_types),*) },
    };
    let map_item = match input_types.len() {
        0 => quote! { () },
        1 => {
            let t = &input_types[0];
            quote! { #t }
        }
        _ => quote! { (#(#input_types),*) },
    };
    let map_bind = match input_idents.len() {
        0 => quote! { () },
        1 => {
            let i = &input_idents[0];
            quote! { #i }
        }
        _ => quote! { (#(#input_idents),*) },
    };
    let bounds = quote! {
        #(for<'__s> #input_types: ::sluice::__private::serde::Serialize,)*
        #(for<'__s> #output_types: ::sluice::__private::serde::de::DeserializeOwned,)*
    };
    quote! {
        #[derive(::sluice::__private::serde::Serialize)]
        #[serde(crate = "::sluice::__private::serde")]
        struct __CallInputs #in_generics {
            #(#input_idents: #in_params,)*
        }

        #[derive(::sluice::__private::serde::Deserialize)]
        #[serde(crate = "::sluice::__private::serde")]
        struct __CallOutputs #out_generics {
            #(#out_idents: #out_params,)*
        }

        #[allow(unused_variables)]
        fn __decode(task: &str, bytes: &[u8]) -> ::std::result::Result<#out_type, ::sluice::CallError>
        where #bounds
        {
            let __CallOutputs { #(#out_idents),* } = ::sluice::tasks::decode_document::<__CallOutputs<#(#output_types),*>>(task, bytes)?;
            ::std::result::Result::Ok(#out_value)
        }

        /// Calls the task as a child action and waits for its outputs.
        #[allow(dead_code, clippy::too_many_arguments)]
        pub fn call(#(#input_idents: #input_types),*) -> ::std::result::Result<#out_type, ::sluice::CallError>
        where #bounds
        {
            ::sluice::tasks::call_with(<Task as ::sluice::__private::TaskDef>::NAME, &__CallInputs { #(#input_idents),* }, __decode)
        }

        /// Starts the task as a child action; wait for it with `.wait()` or `sluice::as_completed`.
        #[allow(dead_code, clippy::too_many_arguments)]
        pub fn submit(#(#input_idents: #input_types),*) -> ::sluice::Pending<#out_type>
        where #bounds
        {
            ::sluice::tasks::submit_with(<Task as ::sluice::__private::TaskDef>::NAME, &__CallInputs { #(#input_idents),* }, __decode)
        }

        /// Calls the task once per item (the inputs, a tuple when there are several).
        #[allow(dead_code)]
        pub fn map<__Items>(items: __Items) -> ::sluice::Map<#out_type>
        where
            __Items: ::std::iter::IntoIterator<Item = #map_item>,
            #bounds
        {
            ::sluice::tasks::map_with(
                <Task as ::sluice::__private::TaskDef>::NAME,
                items,
                |#map_bind| __CallInputs { #(#input_idents),* },
                __decode,
            )
        }
    }
}
