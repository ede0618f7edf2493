//! `#[derive(DomainEvent)]` for hand-written event structs and enums.

use proc_macro2::TokenStream;
use quote::quote;

use super::event::{domain_event_impl, PayloadShape, TopicSpec, VariantSpec};
use crate::ast::{EventData, EventType, Shape};

pub(crate) fn expand(ty: &EventType) -> TokenStream {
    let krate = ty
        .options
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::eventsourcing));
    let type_name = ty.ident.to_string();
    let entity = ty.entity();
    let specs: Vec<VariantSpec<'_>> = match &ty.data {
        EventData::Struct => {
            let o = &ty.options.event;
            let topic = o.topic.as_ref().map_or_else(
                || match &entity {
                    Some(entity) => format!("{entity}.{type_name}"),
                    None => type_name.clone(),
                },
                syn::LitStr::value,
            );
            vec![VariantSpec {
                variant: None,
                cfgs: &[],
                topic: TopicSpec {
                    topic,
                    entity: entity.unwrap_or_else(|| type_name.clone()),
                    event: type_name.clone(),
                    version: o.version.as_ref().map_or(1, |v| v.value),
                    aliases: o.aliases.clone(),
                    upcasts: o
                        .upcast
                        .as_ref()
                        .map(|u| u.steps.clone())
                        .unwrap_or_default(),
                    creates: o.creates,
                },
                shape: PayloadShape::Whole,
            }]
        }
        EventData::Enum(variants) => {
            let entity = entity.unwrap_or_else(|| type_name.clone());
            variants
                .iter()
                .map(|v| VariantSpec {
                    variant: Some(&v.ident),
                    cfgs: &[],
                    topic: TopicSpec {
                        topic: v
                            .options
                            .topic
                            .as_ref()
                            .map_or_else(|| format!("{entity}.{}", v.ident), syn::LitStr::value),
                        entity: entity.clone(),
                        event: v.ident.to_string(),
                        version: v.options.version.as_ref().map_or(1, |v| v.value),
                        aliases: v.options.aliases.clone(),
                        upcasts: v
                            .options
                            .upcast
                            .as_ref()
                            .map(|u| u.steps.clone())
                            .unwrap_or_default(),
                        creates: v.options.creates,
                    },
                    shape: match &v.shape {
                        Shape::Unit => PayloadShape::Unit,
                        Shape::Newtype(t) => PayloadShape::Newtype(t),
                        Shape::Named(fields) => PayloadShape::Named(fields),
                    },
                })
                .collect()
        }
    };
    let ident = &ty.ident;
    let body = domain_event_impl(&krate, &quote!(#ident), ident, &specs, false);
    quote! {
        const _: () = {
            #body
        };
    }
}
