//! The explicit style: one event struct.
use eventsourcing::prelude::*;

/// Created.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(entity = "Example", creates)]
pub struct Created {
    /// A value.
    pub a: u32,
}

/// Renamed, with an explicit topic.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(topic = "Example.Named", version = 2, aliases = ["Example.Titled"], upcast(1 => up))]
pub struct Named(pub String);

fn up(v: eventsourcing::__private::serde_json::Value) -> Result<eventsourcing::__private::serde_json::Value, String> {
    Ok(v)
}

mod reexport {
    pub use eventsourcing as es;
}

/// Through a re-exported runtime.
#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
#[domain_event(crate = "crate::reexport::es", entity = "Example")]
pub struct Deleted;

fn main() {
    assert_eq!(Deleted.topic(), "Example.Deleted");
    assert_eq!(Deleted.encode().unwrap(), b"null");
    let e = Created { a: 1 };
    assert_eq!(e.topic(), "Example.Created");
    assert_eq!(e.encode().unwrap(), br#"{"a":1}"#);
    assert!(Created::registrations()[0].creates);
    assert_eq!(Named("x".into()).topic(), "Example.Named");
    assert_eq!(Named::resolve("Example.Titled").unwrap().version, 2);
}
