//! The `DomainEvent` impl shared by `#[entity]` (for its event enum) and
//! `#[derive(DomainEvent)]`: registrations, dispatch, JSON encode and decode, and the
//! `inventory` registration.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Type};

use crate::ast::Field;
use crate::attr::UpcastStep;

/// One topic as it will be registered.
pub(crate) struct TopicSpec {
    pub(crate) topic: String,
    pub(crate) entity: String,
    pub(crate) event: String,
    pub(crate) version: u32,
    pub(crate) aliases: Vec<LitStr>,
    pub(crate) upcasts: Vec<UpcastStep>,
    pub(crate) creates: bool,
}

/// How one topic's payload is written.
pub(crate) enum PayloadShape<'a> {
    /// The whole type through its own serde impls (a derived struct).
    Whole,
    /// No fields: `{}`.
    Unit,
    /// One unnamed field: the inner value's JSON.
    Newtype(&'a Type),
    /// Named fields: a JSON object of them.
    Named(&'a [Field]),
}

/// One topic of an event type: a variant (or the whole struct, `variant: None`).
pub(crate) struct VariantSpec<'a> {
    pub(crate) variant: Option<&'a Ident>,
    /// `#[cfg(..)]` attributes of the event: its registration and arms carry them.
    pub(crate) cfgs: &'a [syn::Attribute],
    pub(crate) topic: TopicSpec,
    pub(crate) shape: PayloadShape<'a>,
}

/// `#krate::__private`.
pub(crate) fn private(krate: &syn::Path) -> TokenStream {
    quote!(#krate::__private)
}

/// The string for `#[serde(crate = "...")]`.
pub(crate) fn serde_crate(krate: &syn::Path) -> String {
    let path = quote!(#krate::__private::serde).to_string();
    path.replace(' ', "")
}

fn u32_lit(value: u32) -> Literal {
    Literal::u32_unsuffixed(value)
}

/// The `impl DomainEvent`, its helper types and the `inventory` submission, as items to go in
/// a `const _: () = { ... };` block.
/// Whether a payload must be written through helper structs: a `#[serde(flatten)]` field
/// changes how serde drives a struct variant, which the runtime's adapters do not follow.
pub(crate) fn needs_helpers(fields: &[Field]) -> bool {
    fields.iter().flat_map(|f| &f.attrs).any(|attr| {
        let mut flatten = false;
        let _ = attr.parse_nested_meta(|meta| {
            flatten |= meta.path.is_ident("flatten");
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            }
            Ok(())
        });
        flatten
    })
}

/// `ty` is the path to the type, `name` its name. `serde_enum` says that the type is an enum
/// deriving serde's traits with our field attributes (the `#[entity]` enum, where each
/// registration's `event` is its variant's name): its payloads are then written and read
/// through those impls by the runtime's adapters (`encode_variant`, `decode_variant`), with no
/// per-event code here.
pub(crate) fn domain_event_impl(
    krate: &syn::Path,
    ty: &TokenStream,
    name: &Ident,
    specs: &[VariantSpec<'_>],
    serde_enum: bool,
) -> TokenStream {
    let p = private(krate);
    let serde_crate = serde_crate(krate);
    let count = specs.len();
    let type_name = quote!(::std::concat!(
        ::std::module_path!(),
        "::",
        ::std::stringify!(#name)
    ));

    // With `#[cfg]` on events, the index of a registration and their count are sums of
    // `cfg!(..)`s, so that they follow the events compiled in.
    let any_cfg = specs.iter().any(|s| !s.cfgs.is_empty());
    let present = |spec: &VariantSpec<'_>| -> TokenStream {
        if spec.cfgs.is_empty() {
            quote!(1usize)
        } else {
            let preds = spec.cfgs.iter().filter_map(|a| match &a.meta {
                syn::Meta::List(list) => Some(&list.tokens),
                _ => None,
            });
            quote!((::std::cfg!(all(#(#preds),*)) as usize))
        }
    };
    let count = if any_cfg {
        let terms = specs.iter().map(present);
        quote!(0usize #(+ #terms)*)
    } else {
        let n = Literal::usize_unsuffixed(count);
        quote!(#n)
    };
    let index_of = |index: usize| -> TokenStream {
        if any_cfg {
            let terms = specs[..index].iter().map(present);
            quote!(0usize #(+ #terms)*)
        } else {
            let n = Literal::usize_unsuffixed(index);
            quote!(#n)
        }
    };
    let registrations = specs.iter().map(|spec| {
        let cfgs = spec.cfgs;
        let t = &spec.topic;
        let (topic, entity, event) = (&t.topic, &t.entity, &t.event);
        let version = u32_lit(t.version);
        let aliases = &t.aliases;
        let creates = t.creates;
        let upcasters = t.upcasts.iter().map(|step| {
            let from = u32_lit(step.from);
            let path = &step.path;
            quote_spanned! {path.span()=>
                #p::Upcaster { from_version: #from, upcast: #path }
            }
        });
        quote! {
            #(#cfgs)*
            #p::TopicRegistration {
                topic: #topic,
                entity: #entity,
                event: #event,
                type_name: #type_name,
                version: #version,
                aliases: &[#(#aliases),*],
                upcasters: &[#(#upcasters),*],
                creates: #creates,
            }
        }
    });

    let registration_arms = specs.iter().enumerate().map(|(index, spec)| {
        let index = index_of(index);
        let cfgs = spec.cfgs;
        match spec.variant {
            Some(variant) => {
                quote!(#(#cfgs)* Self::#variant { .. } => &__es_registrations[#index],)
            }
            None => quote!(_ => &__es_registrations[#index],),
        }
    });

    let mut helpers = Vec::new();
    let mut encode_arms = Vec::new();
    let mut decode_slice_arms = Vec::new();
    for spec in specs.iter().filter(|_| !serde_enum) {
        let cfgs = spec.cfgs;
        let (arms_before, helpers_before) = (encode_arms.len(), helpers.len());
        let topic = &spec.topic.topic;
        let (pattern, constructor) = match spec.variant {
            Some(v) => (quote!(Self::#v), quote!(Self::#v)),
            None => (quote!(Self), quote!(Self)),
        };
        let variant_name = spec
            .variant
            .map_or_else(|| name.to_string(), Ident::to_string);
        match &spec.shape {
            PayloadShape::Whole => {
                encode_arms.push(quote!(_ => #p::serde_json::to_vec(self),));
                decode_slice_arms
                    .push(quote!(#topic => #p::serde_json::from_slice::<Self>(__es_payload),));
            }
            PayloadShape::Unit => {
                let de = format_ident!("__EsDecode{}", variant_name);
                helpers.push(quote! {
                    #[derive(#p::serde::Deserialize)]
                    #[serde(crate = #serde_crate)]
                    struct #de {}
                });
                encode_arms.push(quote! {
                    #pattern { .. } => ::std::result::Result::Ok(::std::vec::Vec::from(&b"{}"[..])),
                });
                decode_slice_arms.push(quote! {
                    #topic => #p::serde_json::from_slice::<#de>(__es_payload).map(|#de {}| #constructor {}),
                });
            }
            PayloadShape::Newtype(inner) => {
                encode_arms
                    .push(quote!(#pattern(__es_inner) => #p::serde_json::to_vec(__es_inner),));
                decode_slice_arms.push(quote! {
                    #topic => #p::serde_json::from_slice::<#inner>(__es_payload).map(#constructor),
                });
            }
            PayloadShape::Named(fields) => {
                let en = format_ident!("__EsEncode{}", variant_name);
                let de = format_ident!("__EsDecode{}", variant_name);
                let idents: Vec<&Ident> = fields.iter().map(|f| &f.ident).collect();
                let enc_fields = fields.iter().map(|f| {
                    let (ident, ty, attrs) = (&f.ident, &f.ty, &f.attrs);
                    quote!(#(#attrs)* #ident: &'__es #ty,)
                });
                let dec_fields = fields.iter().map(|f| {
                    let (ident, ty, attrs) = (&f.ident, &f.ty, &f.attrs);
                    quote!(#(#attrs)* #ident: #ty,)
                });
                helpers.push(quote! {
                    #[derive(#p::serde::Serialize)]
                    #[serde(crate = #serde_crate)]
                    struct #en<'__es> { #(#enc_fields)* }
                });
                helpers.push(quote! {
                    #[derive(#p::serde::Deserialize)]
                    #[serde(crate = #serde_crate)]
                    struct #de { #(#dec_fields)* }
                });
                encode_arms.push(quote! {
                    #pattern { #(#idents),* } => #p::serde_json::to_vec(&#en { #(#idents),* }),
                });
                decode_slice_arms.push(quote! {
                    #topic => #p::serde_json::from_slice::<#de>(__es_payload)
                        .map(|#de { #(#idents),* }| #constructor { #(#idents),* }),
                });
            }
        }
        if !cfgs.is_empty() {
            let wrap = |t: &mut TokenStream| *t = quote!(#(#cfgs)* #t);
            encode_arms[arms_before..].iter_mut().for_each(wrap);
            decode_slice_arms[arms_before..].iter_mut().for_each(wrap);
            helpers[helpers_before..].iter_mut().for_each(wrap);
        }
    }

    let codec = if serde_enum {
        quote! {
            fn encode(&self) -> ::std::result::Result<::std::vec::Vec<u8>, #p::DomainError> {
                #p::encode_variant(self)
            }

            fn decode(__es_topic: &str, __es_payload: &[u8]) -> ::std::result::Result<Self, #p::DomainError> {
                #p::decode_variant::<Self>(__es_topic, __es_payload)
            }
        }
    } else {
        quote! {
            fn encode(&self) -> ::std::result::Result<::std::vec::Vec<u8>, #p::DomainError> {
                let __es_encoded = match self {
                    #(#encode_arms)*
                };
                __es_encoded.map_err(|__es_source| #p::DomainError::Encode {
                    topic: ::std::borrow::ToOwned::to_owned(#p::DomainEvent::topic(self)),
                    source: __es_source,
                })
            }

            fn decode(__es_topic: &str, __es_payload: &[u8]) -> ::std::result::Result<Self, #p::DomainError> {
                let __es_decoded = match __es_topic {
                    #(#decode_slice_arms)*
                    _ => return ::std::result::Result::Err(#p::unknown_topic::<Self>(__es_topic)),
                };
                __es_decoded.map_err(|__es_source| #p::DomainError::Payload {
                    topic: ::std::borrow::ToOwned::to_owned(__es_topic),
                    source: __es_source,
                })
            }

        }
    };

    quote! {
        #(#helpers)*

        #[automatically_derived]
        impl #p::DomainEvent for #ty {
            fn registrations() -> &'static [#p::TopicRegistration] {
                static REGISTRATIONS: [#p::TopicRegistration; #count] = [#(#registrations),*];
                &REGISTRATIONS
            }

            fn registration(&self) -> &'static #p::TopicRegistration {
                let __es_registrations = <Self as #p::DomainEvent>::registrations();
                match self {
                    #(#registration_arms)*
                }
            }

            #codec
        }

        #p::inventory::submit! {
            #p::EventTypeRegistration {
                type_name: #type_name,
                topics: <#ty as #p::DomainEvent>::registrations,
            }
        }
    }
}
