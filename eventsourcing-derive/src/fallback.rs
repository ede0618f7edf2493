//! What a failed expansion emits beside its errors, so that the rest of the user's crate still
//! type-checks as far as possible: the impl block without our attributes, an empty event enum
//! and an empty command trait; for the derive, an impl whose methods are unreachable.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{ImplItem, ItemImpl, Type};

use crate::ast::strip_attrs;
use crate::attr;
use crate::ctxt::Ctxt;

pub(crate) fn entity(args: TokenStream, mut item: ItemImpl) -> TokenStream {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(func) = impl_item {
            strip_attrs(func);
        }
    }
    let stubs = match &*item.self_ty {
        Type::Path(tp) if item.trait_.is_none() => tp.path.segments.last().map(|last| {
            // Errors in the options were already reported by the failed expansion.
            let cx = Ctxt::new();
            let options = attr::entity_options(&cx, args);
            let _ = cx.check();
            let enum_ident = options
                .event_enum
                .unwrap_or_else(|| format_ident!("{}Event", last.ident));
            let trait_ident = options
                .commands
                .unwrap_or_else(|| format_ident!("{}Commands", last.ident));
            let vis = options.vis.map_or_else(|| quote!(pub), |v| quote!(#v));
            quote! {
                /// Not generated: `#[entity]` failed (see the errors above).
                #[derive(Debug, Clone)]
                #vis enum #enum_ident {}
                /// Not generated: `#[entity]` failed (see the errors above).
                #vis trait #trait_ident {}
            }
        }),
        _ => None,
    };
    quote! {
        #item
        #stubs
    }
}

pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    if matches!(input.data, syn::Data::Union(_)) || !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let p = quote!(::eventsourcing::__private);
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::DomainEvent for #ident {
                fn registrations() -> &'static [#p::TopicRegistration] {
                    &[]
                }
                fn registration(&self) -> &'static #p::TopicRegistration {
                    ::core::unreachable!()
                }
                fn encode(&self) -> ::core::result::Result<::std::vec::Vec<u8>, #p::DomainError> {
                    ::core::unreachable!()
                }
                fn decode(_: &str, _: &[u8]) -> ::core::result::Result<Self, #p::DomainError> {
                    ::core::unreachable!()
                }
                fn decode_value(_: &str, _: #p::serde_json::Value) -> ::core::result::Result<Self, #p::DomainError> {
                    ::core::unreachable!()
                }
            }
        };
    }
}
