//! Compile-fail and compile-pass tests of the macros' messages. The failing cases are grouped
//! in folders by kind of mistake: `entity/` (the impl block), `options/` (`#[entity(..)]`),
//! `events/` (`#[event]` methods and their fields), `signature/` (where clauses, borrowed
//! fields), `commands/` (commands and their visibility), `fallback/` (no cascades after an
//! error) and `derive/` (`#[derive(DomainEvent)]`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*/*.rs");
}
