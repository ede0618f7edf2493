//! Every `#[entity]` and `#[event]` option, through a re-exported runtime.
mod reexport {
    pub use eventsourcing as es;
}

use eventsourcing::__private::serde_json::Value;
use eventsourcing::prelude::*;

/// The state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hound {
    name: String,
    age: u8,
}

#[entity(
    crate = "crate::reexport::es",
    name = "Dog",
    event_enum = "HoundHappened",
    commands = "HoundActions",
    vis = "pub(crate)",
    snapshot_every = 50,
    snapshot_version = 2,
    snapshot_upcast(1 => up)
)]
impl Hound {
    /// Born.
    #[event(Born, topic = "Kennel.Born", version = 3, aliases = ["Dog.Created", "Dog.Registered"], upcast(1 => up, 2 => up))]
    pub fn born(name: String, #[serde(default)] age: u8) -> Self {
        Hound { name, age }
    }

    #[event(Aged)]
    fn birthday(&mut self) {
        self.age += 1;
    }

    /// Birthdays from a pair, with a pattern parameter.
    pub fn birthday_pair(&mut self, (a, b): (u8, u8)) -> Result<u8, String> {
        if a > b {
            return Err("unordered".into());
        }
        for _ in a..b {
            self.birthday();
        }
        Ok(self.age)
    }

    /// Several birthdays.
    pub fn birthdays(&mut self, n: u8) {
        for _ in 0..n {
            self.birthday();
        }
    }
}

fn up(v: Value) -> Result<Value, String> {
    Ok(v)
}

#[derive(Debug, Clone)]
pub struct Plain {
    n: u32,
}

#[entity(snapshots = false)]
impl Plain {
    #[event(Made)]
    fn make() -> Self {
        Plain { n: 0 }
    }
}

fn main() {
    let mut hound = Hound::born("Rex".into(), 1);
    hound.birthdays(2);
    assert_eq!(hound.age, 3);
    assert_eq!(hound.birthday_pair((1, 3)), Ok(5));
    assert!(hound.birthday_pair((3, 1)).is_err());
    assert_eq!(hound.version(), 5);
    assert_eq!(HoundHappened::Aged.topic(), "Dog.Aged");
    assert_eq!(<Hound as Entity>::NAME, "Dog");
    let codec = Hound::snapshot_codec().unwrap();
    assert_eq!((codec.version, codec.every), (2, Some(50)));
    let reg = HoundHappened::resolve("Dog.Created").unwrap();
    assert_eq!((reg.topic, reg.version, reg.upcasters.len()), ("Kennel.Born", 3, 2));
    assert!(Plain::snapshot_codec().is_none());
    assert_eq!(Plain::make().n, 0);
}
