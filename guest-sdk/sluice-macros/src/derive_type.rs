//! `#[derive(sluice::Type)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, LitStr};

/// The name serde gives a field or variant: its `#[serde(rename = "...")]` or its identifier.
fn serde_name(attrs: &[Attribute], ident: &syn::Ident) -> syn::Result<String> {
    let mut name = ident.to_string();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                name = meta.value()?.parse::<LitStr>()?.value();
            } else if meta.input.peek(syn::Token![=]) {
                // Some other `key = value` serde setting: consume its value and ignore it.
                meta.value()?.parse::<syn::Expr>()?;
            }
            Ok(())
        })?;
    }
    Ok(name)
}

fn has_serde_flag(attrs: &[Attribute], flag: &str) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .any(|attr| {
            let mut found = false;
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(flag) {
                    found = true;
                } else if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<syn::Expr>()?;
                }
                Ok(())
            });
            found
        })
}

pub fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let body = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => {
                let mut entries = Vec::new();
                for f in &named.named {
                    let Some(field_ident) = &f.ident else {
                        continue;
                    };
                    let name = serde_name(&f.attrs, field_ident)?;
                    let ty = &f.ty;
                    entries.push(quote! {
                        (#name, <#ty as ::sluice::SluiceType>::describe(table))
                    });
                }
                quote! {
                    {
                        let fields = ::std::vec![#(#entries),*];
                        table.record(fields)
                    }
                }
            }
            Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
                let ty = &unnamed.unnamed[0].ty;
                quote! { <#ty as ::sluice::SluiceType>::describe(table) }
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    ident,
                    "sluice::Type: a struct needs named fields (a record) or exactly one field",
                ))
            }
        },
        Data::Enum(e) => {
            if e.variants.iter().all(|v| matches!(v.fields, Fields::Unit)) {
                let mut names = Vec::new();
                for v in &e.variants {
                    names.push(serde_name(&v.attrs, &v.ident)?);
                }
                quote! {
                    table.push(::sluice::bindings::sluice::task::types::TypeNode::Enum(
                        ::std::vec![#(::std::string::String::from(#names)),*]
                    ))
                }
            } else if e
                .variants
                .iter()
                .all(|v| matches!(&v.fields, Fields::Unnamed(u) if u.unnamed.len() == 1))
            {
                if !has_serde_flag(&input.attrs, "untagged") {
                    return Err(syn::Error::new_spanned(
                        ident,
                        "sluice::Type: an enum of single-value variants is a union; add \
                         #[serde(untagged)] so it is encoded as one",
                    ));
                }
                let members = e.variants.iter().filter_map(|v| match &v.fields {
                    Fields::Unnamed(u) => {
                        let ty = &u.unnamed[0].ty;
                        Some(quote! { <#ty as ::sluice::SluiceType>::describe(table) })
                    }
                    _ => None,
                });
                quote! {
                    {
                        let members = ::std::vec![#(#members),*];
                        table.push(::sluice::bindings::sluice::task::types::TypeNode::Union(members))
                    }
                }
            } else {
                return Err(syn::Error::new_spanned(
                    ident,
                    "sluice::Type: an enum must have only unit variants (an enum) or only \
                     single-value variants (a union)",
                ));
            }
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                ident,
                "sluice::Type: Rust unions cannot be described",
            ))
        }
    };
    Ok(quote! {
        impl #impl_generics ::sluice::SluiceType for #ident #ty_generics #where_clause {
            fn describe(table: &mut ::sluice::TypeTable) -> u32 {
                #body
            }
        }
    })
}
