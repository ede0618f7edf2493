use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dog {
    name: String,
}

#[entity]
impl Dog {
    #[event(Registered, version = 3, upcast(1 => v1_to_v2))]
    fn register(name: String) -> Self {
        Dog { name }
    }
}

fn v1_to_v2(
    value: eventsourcing::__private::serde_json::Value,
) -> Result<eventsourcing::__private::serde_json::Value, String> {
    Ok(value)
}

fn main() {}
