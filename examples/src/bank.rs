//! Bank accounts: deposits, withdrawals within an overdraft limit, and transfers.

use eventsourcing::prelude::*;

/// Why a command on an account was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Amounts must be positive.
    #[error("amount must be positive, got {0}")]
    NotPositive(i64),
    /// The withdrawal would take the balance below the overdraft limit.
    #[error("insufficient funds: balance {balance}, overdraft limit {overdraft_limit}, requested {requested}")]
    InsufficientFunds {
        /// The balance before the withdrawal.
        balance: i64,
        /// How far below zero the balance may go.
        overdraft_limit: i64,
        /// The amount asked for.
        requested: i64,
    },
    /// The account is closed.
    #[error("the account is closed")]
    Closed,
}

/// An account's state; amounts are in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    owner: String,
    balance: i64,
    overdraft_limit: i64,
    closed: bool,
}

#[entity]
impl Account {
    /// An account was opened.
    #[event(Opened)]
    pub fn open(owner: String, overdraft_limit: i64) -> Self {
        Account {
            owner,
            balance: 0,
            overdraft_limit,
            closed: false,
        }
    }

    /// Money came in.
    #[event(Credited)]
    fn credit(&mut self, amount: i64) {
        self.balance += amount;
    }

    /// Money went out.
    #[event(Debited)]
    fn debit(&mut self, amount: i64) {
        self.balance -= amount;
    }

    /// The account was closed.
    #[event(Closed)]
    fn mark_closed(&mut self) {
        self.closed = true;
    }

    /// Deposits money.
    ///
    /// # Errors
    /// [`AccountError::NotPositive`] or [`AccountError::Closed`].
    pub fn deposit(&mut self, amount: i64) -> Result<(), AccountError> {
        self.check_open()?;
        if amount <= 0 {
            return Err(AccountError::NotPositive(amount));
        }
        self.credit(amount);
        Ok(())
    }

    /// Withdraws money, down to minus the overdraft limit.
    ///
    /// # Errors
    /// [`AccountError::NotPositive`], [`AccountError::InsufficientFunds`] or
    /// [`AccountError::Closed`].
    pub fn withdraw(&mut self, amount: i64) -> Result<(), AccountError> {
        self.check_open()?;
        if amount <= 0 {
            return Err(AccountError::NotPositive(amount));
        }
        if self.balance() - amount < -self.overdraft_limit() {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance(),
                overdraft_limit: self.overdraft_limit(),
                requested: amount,
            });
        }
        self.debit(amount);
        Ok(())
    }

    /// Closes the account.
    ///
    /// # Errors
    /// [`AccountError::Closed`] when it already is.
    pub fn close(&mut self) -> Result<(), AccountError> {
        self.check_open()?;
        self.mark_closed();
        Ok(())
    }

    /// The owner's name.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The balance in cents.
    #[must_use]
    pub fn balance(&self) -> i64 {
        self.balance
    }

    /// How far below zero the balance may go, in cents.
    #[must_use]
    pub fn overdraft_limit(&self) -> i64 {
        self.overdraft_limit
    }

    /// Whether the account is closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn check_open(&self) -> Result<(), AccountError> {
        if self.closed {
            Err(AccountError::Closed)
        } else {
            Ok(())
        }
    }
}

/// Moves money between two accounts: both changes are recorded, and the caller saves both
/// aggregates in one atomic `app.save((&mut from, &mut to))`.
///
/// # Errors
/// The first refusal of either account; both aggregates are unchanged then.
pub fn transfer(
    from: &mut Aggregate<Account>,
    to: &mut Aggregate<Account>,
    amount: i64,
) -> Result<(), AccountError> {
    let before = from.checkpoint();
    from.withdraw(amount)?;
    if let Err(error) = to.deposit(amount) {
        from.restore(before);
        return Err(error);
    }
    Ok(())
}
