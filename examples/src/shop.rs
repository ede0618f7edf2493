//! A shop: an orders application, a payments process application that charges every placed
//! order exactly once, and a revenue-per-day projection over the payments.

use std::collections::BTreeMap;

use eventsourcing::persistence::BoxError;
use eventsourcing::prelude::*;
use eventsourcing::system::{Notification, Policy, ProcessingContext, Projection};

/// Why a command on an order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// An order needs a positive amount.
    #[error("an order must cost something")]
    Free,
    /// The order was cancelled already.
    #[error("the order is cancelled")]
    Cancelled,
}

/// An order: who placed it, for how much, on which day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    customer: String,
    amount_cents: u64,
    day: String,
    cancelled: bool,
}

#[entity]
impl Order {
    /// A customer placed an order.
    #[event(Placed)]
    pub fn place(customer: String, amount_cents: u64, day: String) -> Self {
        Order {
            customer,
            amount_cents,
            day,
            cancelled: false,
        }
    }

    /// The order was cancelled.
    #[event(Cancelled)]
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// Cancels the order once.
    ///
    /// # Errors
    /// [`OrderError::Cancelled`] when it is cancelled already.
    pub fn cancel_once(&mut self) -> Result<(), OrderError> {
        if self.cancelled {
            return Err(OrderError::Cancelled);
        }
        self.cancel();
        Ok(())
    }

    /// The amount, in cents.
    #[must_use]
    pub fn amount_cents(&self) -> u64 {
        self.amount_cents
    }

    /// Whether the order was cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

/// Places an order, refusing free ones.
///
/// # Errors
/// [`OrderError::Free`].
pub fn place_order(
    customer: &str,
    amount_cents: u64,
    day: &str,
) -> Result<Aggregate<Order>, OrderError> {
    if amount_cents == 0 {
        return Err(OrderError::Free);
    }
    Ok(Order::place(customer.into(), amount_cents, day.into()))
}

/// A payment for one order; its id is the order's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    amount_cents: u64,
    day: String,
    refunded: bool,
}

#[entity]
impl Payment {
    /// The customer was charged for an order.
    #[event(Charged)]
    pub fn charge(amount_cents: u64, day: String) -> Self {
        Payment {
            amount_cents,
            day,
            refunded: false,
        }
    }

    /// The charge was refunded.
    #[event(Refunded)]
    pub fn refund(&mut self) {
        self.refunded = true;
    }

    /// The amount charged, in cents.
    #[must_use]
    pub fn amount_cents(&self) -> u64 {
        self.amount_cents
    }

    /// Whether the payment was refunded.
    #[must_use]
    pub fn is_refunded(&self) -> bool {
        self.refunded
    }
}

/// The payments policy: charge each placed order, refund each cancelled one.
#[derive(Debug, Default)]
pub struct Payments;

impl Policy for Payments {
    fn topics(&self) -> Vec<String> {
        OrderEvent::topics().into_iter().map(String::from).collect()
    }

    fn process(
        &mut self,
        event: &Notification<'_>,
        ctx: &mut ProcessingContext<'_>,
    ) -> Result<(), BoxError> {
        let Some(order) = event.decode::<OrderEvent>()? else {
            return Ok(());
        };
        match order.event {
            OrderEvent::Placed {
                amount_cents, day, ..
            } => {
                let mut payment = ctx.create_with_id::<Payment>(
                    order.stream_id,
                    PaymentEvent::Charged { amount_cents, day },
                )?;
                ctx.save(&mut payment)?;
            }
            OrderEvent::Cancelled => {
                if let Some(mut payment) = ctx.find::<Payment>(order.stream_id)? {
                    if !payment.is_refunded() {
                        payment.refund();
                        ctx.save(&mut payment)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Revenue per day over the payments log: charges minus refunds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevenuePerDay {
    by_day: BTreeMap<String, i64>,
    /// Amount and day of each payment, to reverse refunds.
    charges: BTreeMap<Uuid, (String, i64)>,
}

impl RevenuePerDay {
    /// Revenue in cents, per day.
    #[must_use]
    pub fn by_day(&self) -> &BTreeMap<String, i64> {
        &self.by_day
    }
}

impl Projection for RevenuePerDay {
    fn name(&self) -> &str {
        "revenue-per-day"
    }

    fn apply(&mut self, event: &Notification<'_>) -> Result<(), BoxError> {
        let Some(payment) = event.decode::<PaymentEvent>()? else {
            return Ok(());
        };
        match payment.event {
            PaymentEvent::Charged { amount_cents, day } => {
                let amount = i64::try_from(amount_cents)?;
                *self.by_day.entry(day.clone()).or_default() += amount;
                self.charges.insert(payment.stream_id, (day, amount));
            }
            PaymentEvent::Refunded => {
                if let Some((day, amount)) = self.charges.get(&payment.stream_id) {
                    *self.by_day.entry(day.clone()).or_default() -= amount;
                }
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}
