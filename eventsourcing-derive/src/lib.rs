//! Procedural macros for `eventsourcing` (placeholder while the real ones are written).
use proc_macro::TokenStream;
/// `#[entity]`.
#[proc_macro_attribute]
pub fn entity(_a: TokenStream, i: TokenStream) -> TokenStream {
    i
}
/// `#[derive(DomainEvent)]`.
#[proc_macro_derive(DomainEvent, attributes(domain_event))]
pub fn domain_event(_i: TokenStream) -> TokenStream {
    TokenStream::new()
}
