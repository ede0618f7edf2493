//! Code generation. The entry points are plain functions over `proc_macro2` tokens, so that
//! unit tests can call them on `parse_quote!` input.

use proc_macro2::TokenStream;
use syn::{DeriveInput, ItemImpl};

use crate::ast::{Entity, EventType};
use crate::check;
use crate::ctxt::Ctxt;

mod derive;
pub(crate) mod entity;
pub(crate) mod event;
pub(crate) mod names;
mod rollback;

#[cfg(test)]
pub(crate) use rollback::needs_rollback;

/// Expands `#[entity(attr)] item`. On error, the caller emits the errors and a fallback.
pub(crate) fn expand_entity(attr: TokenStream, item: ItemImpl) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let model = Entity::from_ast(&cx, attr, item);
    if let Some(model) = &model {
        check::check_entity(&cx, model);
    }
    cx.check()?;
    let Some(model) = model else {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[entity]` could not read this impl block",
        ));
    };
    Ok(entity::expand(&model))
}

/// Expands `#[derive(DomainEvent)]`.
pub(crate) fn expand_derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let model = EventType::from_ast(&cx, input);
    if let Some(model) = &model {
        check::check_event_type(&cx, model);
    }
    cx.check()?;
    let Some(model) = model else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "`#[derive(DomainEvent)]` could not read this type",
        ));
    };
    Ok(derive::expand(&model))
}
