//! What a failed expansion emits beside its errors, so that the rest of the user's crate still
//! type-checks: the whole API shape of a successful expansion, with bodies that are never
//! reached. For `#[entity]`: the impl block without our attributes, factories returning
//! `Aggregate<T>`, an (empty) event enum implementing `DomainEvent`, `impl Entity`, and the
//! command traits implemented for `Aggregate<T>`; for the derive, an impl whose methods are
//! unreachable.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ImplItem, ItemImpl, ReceiverKind, Type, Visibility};

use crate::ast::strip_attrs;
use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::entity::{decl_sig, CommandGroup};
use crate::expand::names;
use crate::symbol::EVENT;

/// The stand-in items for a block whose expansion failed, passed through a local identity
/// macro: they are then defined one expansion step after the `compile_error!` that precedes
/// them, so the macro's own error is reported first even when a stand-in item clashes with
/// an existing one (a second `#[entity]` block for the same type: "the name `DogEvent` is
/// defined multiple times" used to come before the error that explains it).
pub(crate) fn entity(args: TokenStream, item: ItemImpl) -> TokenStream {
    let items = entity_items(args, item);
    quote! {
        macro_rules! __es_fallback {
            ($($tokens:tt)*) => { $($tokens)* };
        }
        __es_fallback! { #items }
    }
}

fn entity_items(args: TokenStream, mut item: ItemImpl) -> TokenStream {
    // A generic impl has no concrete entity to stand in for: only the items are kept.
    let ident = match &*item.self_ty {
        Type::Path(tp)
            if item.trait_.is_none() && tp.qself.is_none() && item.generics.params.is_empty() =>
        {
            tp.path.segments.last().map(|last| last.ident.clone())
        }
        _ => None,
    };
    let Some(ident) = ident else {
        for impl_item in &mut item.items {
            if let ImplItem::Fn(func) = impl_item {
                strip_attrs(func);
            }
        }
        return quote!(#item);
    };
    // Errors in the options were already reported by the failed expansion.
    let cx = Ctxt::new();
    let options = attr::entity_options(&cx, args);
    let _ = cx.check();
    let krate = options
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::eventsourcing));
    let p = quote!(#krate::__private);
    let enum_ident = options
        .event_enum
        .clone()
        .unwrap_or_else(|| format_ident!("{}Event", ident));
    let vis = options
        .vis
        .clone()
        .unwrap_or_else(|| Visibility::Public(syn::Token![pub](proc_macro2::Span::call_site())));
    let name = options
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), syn::LitStr::value);
    let self_ty = (*item.self_ty).clone();
    let unreachable = quote!(::std::unreachable!("`#[entity]` failed to expand"));

    let mut kept = Vec::new();
    let mut groups: Vec<(CommandGroup, Vec<TokenStream>, Vec<TokenStream>)> = Vec::new();
    for impl_item in std::mem::take(&mut item.items) {
        let ImplItem::Fn(mut func) = impl_item else {
            kept.push(impl_item);
            continue;
        };
        let is_event = func.attrs.iter().any(|a| a.path() == EVENT);
        strip_attrs(&mut func);
        let is_mut_method = matches!(
            func.sig.receiver().map(|r| &r.kind),
            Some(ReceiverKind::Reference(_, _, Some(_)))
        );
        if is_event && func.sig.receiver().is_none() {
            // A factory, as the expansion would generate it.
            let (fvis, fname) = (&func.vis, &func.sig.ident);
            let docs = func.attrs.iter().filter(|a| crate::ast::is_doc(a));
            let types = func.sig.inputs.iter().filter_map(|input| match input {
                FnArg::Typed(pat) => Some(&pat.ty),
                FnArg::Receiver(_) => None,
            });
            let ret = match &func.sig.output {
                syn::ReturnType::Type(_, ty) if crate::ast::fallible_self(ty, &ident) => {
                    crate::expand::entity::replace_first_arg(ty, &quote!(#p::Aggregate<Self>))
                }
                _ => syn::parse_quote!(#p::Aggregate<Self>),
            };
            kept.push(syn::parse_quote! {
                #(#docs)*
                #[allow(unused_variables, clippy::unused_self)]
                #fvis fn #fname(#(_: #types),*) -> #ret {
                    #unreachable
                }
            });
        } else if is_mut_method {
            // A command on `Aggregate<T>`.
            // Trait methods cannot be `const` (the error for it was reported already).
            let mut sig = func.sig.clone();
            sig.constness = None;
            let decl = decl_sig(&sig);
            let mut imp = decl_sig(&sig);
            for input in &mut imp.inputs {
                if let FnArg::Typed(pat) = input {
                    *pat.pat = syn::parse_quote!(_);
                }
            }
            let group = CommandGroup::of(&func.vis, &vis);
            let (d, i) = (quote!(#decl;), quote!(#imp { #unreachable }));
            match groups.iter_mut().find(|(g, _, _)| *g == group) {
                Some((_, decls, impls)) => {
                    decls.push(d);
                    impls.push(i);
                }
                None => groups.push((group, vec![d], vec![i])),
            }
        } else {
            kept.push(ImplItem::Fn(func));
        }
    }
    if !groups.iter().any(|(g, _, _)| *g == CommandGroup::Main) {
        groups.push((CommandGroup::Main, Vec::new(), Vec::new()));
    }
    groups.sort_by_key(|(g, _, _)| *g);
    let traits = groups.iter().map(|(group, decls, impls)| {
        let (trait_ident, trait_vis, _, _) =
            group.describe(&ident, names::group_trait(&ident, &options, *group), &vis);
        let decls = decls.iter();
        let decl = quote! {
            /// Not generated: `#[entity]` failed (see the errors above).
            #[allow(private_interfaces, dead_code)]
            #trait_vis trait #trait_ident {
                #(#decls)*
            }
        };
        let imp = quote! {
            #[allow(unused_variables)]
            impl #trait_ident for #p::Aggregate<#self_ty> {
                #(#impls)*
            }
        };
        (decl, imp)
    });
    let (trait_decls, trait_impls): (Vec<_>, Vec<_>) = traits.unzip();
    item.items = kept;
    let extra = &options.derive;
    let extra_derives = if extra.is_empty() {
        quote!()
    } else {
        quote!(#[derive(#(#extra),*)])
    };
    quote! {
        #item

        /// Not generated: `#[entity]` failed (see the errors above).
            #[derive(Debug, Clone)]
            #extra_derives
            #[allow(private_interfaces)]
            #vis enum #enum_ident {}

            #(#trait_decls)*

        impl #p::DomainEvent for #enum_ident {
            fn registrations() -> &'static [#p::TopicRegistration] {
                &[]
            }
            fn registration(&self) -> &'static #p::TopicRegistration {
                match *self {}
            }
            fn encode(&self) -> ::std::result::Result<::std::vec::Vec<u8>, #p::DomainError> {
                match *self {}
            }
            fn decode(_: &str, _: &[u8]) -> ::std::result::Result<Self, #p::DomainError> {
                #unreachable
            }
        }

        impl #p::Entity for #self_ty {
            type Event = #enum_ident;
            const NAME: &'static str = #name;
            fn mutate(
                _: ::std::option::Option<Self>,
                event: #enum_ident,
            ) -> ::std::result::Result<Self, #p::DomainError> {
                match event {}
            }
        }

        #(#trait_impls)*
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
            }
        };
    }
}
