//! Unit tests of the expansion functions, and the expansion snapshots under
//! `tests/expand/` (regenerate them with `UPDATE_EXPAND=1`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse_quote;

use crate::expand::{expand_derive, expand_entity};

fn pretty(tokens: &TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens.clone()).expect("the expansion parses as a file");
    prettyplease::unparse(&file)
}

fn snapshot(name: &str, tokens: &TokenStream) {
    let actual = pretty(tokens);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expand")
        .join(format!("{name}.expanded.rs"));
    if std::env::var_os("UPDATE_EXPAND").is_some() {
        std::fs::write(&path, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_EXPAND=1", path.display()));
    assert!(
        expected == actual,
        "expansion of {name} changed; run with UPDATE_EXPAND=1 and review the diff:\n{actual}"
    );
}

#[test]
fn dog_expansion() {
    let item = parse_quote! {
        impl Dog {
            /// Registers a dog.
            #[event(Registered)]
            pub fn register(name: String) -> Self {
                Dog { name, tricks: Vec::new() }
            }

            #[event(TrickAdded)]
            fn add_trick(&mut self, #[serde(default)] trick: String) {
                self.tricks.push(trick);
            }

            /// Adds a trick once.
            pub fn add_trick_once(&mut self, trick: String) -> Result<(), DogError> {
                if self.knows(&trick) {
                    return Err(DogError::AlreadyKnown(trick));
                }
                self.add_trick(trick);
                Ok(())
            }

            /// Whether the dog knows the trick.
            pub fn knows(&self, trick: &str) -> bool {
                self.tricks.iter().any(|t| t == trick)
            }
        }
    };
    let tokens = expand_entity(TokenStream::new(), item).expect("expands");
    snapshot("dog", &tokens);
}

#[test]
fn options_expansion() {
    let item = parse_quote! {
        impl Hound {
            #[event(Born, topic = "Kennel.Born", version = 2, aliases = ["Dog.Born"], upcast(1 => up))]
            fn born() -> Self {
                Hound
            }

            #[event(Fed)]
            fn feed(
                &mut self,
                /// Grams of food.
                grams: u32,
            ) {
            }

            pub(crate) fn feed_twice(&mut self, grams: u32) {
                self.feed(grams);
                self.feed(grams);
            }
        }
    };
    let attr = quote!(
        crate = "crate::es",
        name = "Dog",
        vis = "pub(crate)",
        snapshot_every = 10,
        derive(PartialEq, Eq)
    );
    let tokens = expand_entity(attr, item).expect("expands");
    snapshot("options", &tokens);
}

#[test]
fn counter_derive_expansion() {
    let input = parse_quote! {
        #[domain_event(entity = "Counter")]
        enum CounterEvent {
            Started,
            Incremented { by: u32 },
            Reset(u32),
        }
    };
    let tokens = expand_derive(&input).expect("expands");
    snapshot("counter_derive", &tokens);
}

#[test]
fn errors_are_collected_in_one_pass() {
    let item = parse_quote! {
        impl Dog {
            #[event(Registered, topc = "x", version = 0)]
            fn register(&self) {}
        }
    };
    let err = expand_entity(quote!(nam = "X"), item).expect_err("fails");
    let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(messages[0].starts_with("unknown eventsourcing attribute `nam`"));
}

#[test]
fn struct_topics_default_to_entity_dot_name() {
    let input = parse_quote! {
        #[domain_event(entity = "Example")]
        struct Created { a: u32 }
    };
    let tokens = expand_derive(&input).expect("expands").to_string();
    assert!(tokens.contains("\"Example.Created\""), "{tokens}");
}

#[test]
fn rollback_is_needed_only_where_an_err_can_follow_an_event() {
    use crate::expand::needs_rollback;
    let readers = ["knows".to_owned()].into_iter().collect();
    let cases: Vec<(bool, syn::Block)> = vec![
        // Checks, then records: no rollback.
        (
            false,
            parse_quote!({
                if self.knows(&t) {
                    return Err(E::Known);
                }
                self.add(t);
                Ok(())
            }),
        ),
        (
            false,
            parse_quote!({
                let n = self.version();
                self.add(t);
                self.add(u);
                Ok(n)
            }),
        ),
        (
            false,
            parse_quote!({
                self.add(t);
                return Ok(());
            }),
        ),
        (
            false,
            parse_quote!({
                let x = parse(&t)?;
                self.add(x);
                println!("{}", self.tricks.len());
                Ok(())
            }),
        ),
        (false, parse_quote!({ Err(E::Never) })),
        // An `Err` can follow an event.
        (
            true,
            parse_quote!({
                self.add(t);
                check(&u)?;
                Ok(())
            }),
        ),
        (
            true,
            parse_quote!({
                self.add(t);
                if self.knows(&u) {
                    return Err(E::Known);
                }
                Ok(())
            }),
        ),
        (
            true,
            parse_quote!({
                for t in ts {
                    if t.is_empty() {
                        return Err(E::Empty);
                    }
                    self.add(t);
                }
                Ok(())
            }),
        ),
        (
            true,
            parse_quote!({
                self.add(t);
                self.other(u)
            }),
        ),
        (
            true,
            parse_quote!({
                self.add(t);
                Ok(self.other(u)?)
            }),
        ),
        (
            true,
            parse_quote!({
                helper(self)?;
                Ok(())
            }),
        ),
        (
            true,
            parse_quote!({
                self.add(t);
                ensure!(u.len() > 1, E::Short);
                Ok(())
            }),
        ),
        (
            true,
            parse_quote!({
                helper!(self);
                if bad {
                    return Err(E::Bad);
                }
                Ok(())
            }),
        ),
        (
            true,
            parse_quote!({
                self.add(t);
                match u {
                    Some(_) => Ok(()),
                    None => Err(E::None),
                }
            }),
        ),
    ];
    for (expected, block) in cases {
        assert_eq!(
            needs_rollback(&block, &readers),
            expected,
            "{}",
            quote!(#block)
        );
    }
}

/// The debug switch prints formatted code: one item a line, indented, no token spacing.
#[test]
fn debug_expansion_is_formatted() {
    let raw = quote!(impl Dog { fn bark(&self) -> u8 { ::std::convert::identity(1) } }).to_string();
    let code = crate::formatted(&raw);
    if code.contains("not formatted") {
        eprintln!("rustfmt is not installed: the fallback printed the tokens as they are");
        assert!(code.starts_with(&raw));
        return;
    }
    assert_eq!(
        code,
        "impl Dog {\n    fn bark(&self) -> u8 {\n        ::std::convert::identity(1)\n    }\n}\n"
    );
}
