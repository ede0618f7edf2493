// An event method without `pub` is a private command: the public command that checks the
// rule is the only way in from outside the entity's module.
mod bank {
    use eventsourcing::prelude::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Account {
        balance: i64,
    }

    #[entity]
    impl Account {
        #[event(Opened)]
        pub fn open() -> Self {
            Account { balance: 0 }
        }

        #[event(Debited)]
        fn debit(&mut self, amount: i64) {
            self.balance -= amount;
        }

        pub fn withdraw(&mut self, amount: i64) -> Result<(), String> {
            if amount > self.balance {
                return Err("insufficient funds".into());
            }
            self.debit(amount);
            Ok(())
        }
    }
}

use bank::{Account, AccountCommands};

fn main() {
    let mut account = Account::open();
    account.withdraw(5).unwrap_err();
    account.debit(5);
}
