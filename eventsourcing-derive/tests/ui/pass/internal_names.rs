//! Event parameters and variant fields named like the locals of the generated code: the
//! expansion must not clash with any of them.
use eventsourcing::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    total: u64,
}

#[entity]
impl Machine {
    #[event(Built)]
    fn build(state: u64, event: u64, topic: String, payload: Vec<u8>) -> Self {
        Machine { total: state + event + topic.len() as u64 + payload.len() as u64 }
    }

    #[event(Changed)]
    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        state: u64,
        event: u64,
        topic: String,
        payload: Vec<u8>,
        value: u64,
        source: u64,
        registrations: u64,
        encoded: u64,
        decoded: u64,
        inner: u64,
    ) {
        self.total += state + event + value + source + registrations + encoded + decoded + inner;
        self.total += topic.len() as u64 + payload.len() as u64;
    }

    #[event(Reset)]
    fn reset(&mut self, checkpoint: u64, result: u64, rollback: u64) {
        self.total = checkpoint + result + rollback;
    }

    pub fn change_checked(&mut self, state: u64, checkpoint: u64) -> Result<u64, String> {
        if state == 0 {
            return Err("zero".to_owned());
        }
        self.reset(checkpoint, 0, 0);
        Ok(self.total)
    }

    /// Records, then may fail: this command runs with a rollback, whose locals must not hide
    /// its parameters.
    pub fn reset_then_check(
        &mut self,
        rollback: u64,
        began: u64,
        outcome: u64,
        result: u64,
    ) -> Result<u64, String> {
        self.reset(rollback, began, outcome);
        if result == 0 {
            return Err("zero".to_owned());
        }
        Ok(self.total + result)
    }
}

/// A hand-written event enum with fields named like the generated code's locals.
#[derive(Debug, Clone, DomainEvent)]
pub enum SignalEvent {
    Sent { topic: String, payload: Vec<u8>, value: u64, source: u64, registrations: u64 },
    Wrapped(u64),
}

fn main() {
    let mut machine = Machine::build(1, 2, "t".to_owned(), vec![1]);
    machine.change(1, 1, "t".to_owned(), vec![1], 1, 1, 1, 1, 1, 1);
    assert_eq!(machine.total, 15);
    assert_eq!(machine.change_checked(1, 7), Ok(7));
    assert!(machine.change_checked(0, 9).is_err());
    assert_eq!(machine.version(), 3);
    assert_eq!(machine.reset_then_check(1, 2, 3, 4), Ok(10));
    assert!(machine.reset_then_check(5, 5, 5, 0).is_err());
    assert_eq!((machine.version(), machine.total), (4, 6));
    for envelope in machine.pending_events() {
        let event = &envelope.event;
        let bytes = DomainEvent::encode(event).expect("encodes");
        let back = MachineEvent::decode(DomainEvent::topic(event), &bytes).expect("decodes");
        assert_eq!(DomainEvent::topic(&back), DomainEvent::topic(event));
    }
    let signal = SignalEvent::Sent {
        topic: "a".to_owned(),
        payload: vec![],
        value: 1,
        source: 2,
        registrations: 3,
    };
    let bytes = signal.encode().expect("encodes");
    assert!(SignalEvent::decode("Signal.Sent", &bytes).is_ok());
    let _ = SignalEvent::Wrapped(1);
}
