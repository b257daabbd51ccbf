//! Example environment: a small order book. Records, enums, lists and optional inputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, sluice::Type)]
pub struct Order {
    pub id: String,
    pub customer: String,
    pub amount_cents: i64,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sluice::Type)]
pub enum Status {
    Open,
    Shipped,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize, sluice::Type)]
pub struct Summary {
    pub orders: i64,
    pub total_cents: i64,
    pub by_customer: BTreeMap<String, i64>,
    pub biggest: Option<Order>,
}

/// Totals the orders that are not cancelled, optionally for one status only.
#[sluice::task]
fn summarize(orders: Vec<Order>, only: Option<Status>) -> Summary {
    let kept: Vec<&Order> = orders
        .iter()
        .filter(|o| o.status != Status::Cancelled)
        .filter(|o| only.is_none_or(|s| o.status == s))
        .collect();
    let mut by_customer = BTreeMap::new();
    for o in &kept {
        *by_customer.entry(o.customer.clone()).or_insert(0) += o.amount_cents;
    }
    Summary {
        orders: kept.len() as i64,
        total_cents: kept.iter().map(|o| o.amount_cents).sum(),
        by_customer,
        biggest: kept
            .iter()
            .max_by_key(|o| o.amount_cents)
            .map(|o| (*o).clone()),
    }
}

/// Applies a discount in percent; refuses discounts above 50 (a user error).
#[sluice::task]
fn discount(order: Order, percent: i64) -> sluice::Result<Order> {
    if !(0..=50).contains(&percent) {
        return Err(sluice::Error::user(format!(
            "discount of {percent}% is outside 0..=50"
        )));
    }
    sluice::log::info(format!("discounting {} by {percent}%", order.id));
    Ok(Order {
        amount_cents: order.amount_cents * (100 - percent) / 100,
        ..order
    })
}

/// Moves an order to its next status.
#[sluice::task]
fn advance(status: Status) -> Status {
    match status {
        Status::Open => Status::Shipped,
        other => other,
    }
}

/// Adds one (the benchmark's task).
#[sluice::task]
fn add_one(x: i64) -> i64 {
    x + 1
}

sluice::export_environment!(summarize, discount, advance, add_one);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_plain_functions_too() {
        assert_eq!(add_one(1), 2);
        assert_eq!(advance(Status::Open), Status::Shipped);
    }
}
