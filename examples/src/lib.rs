//! The domain models of the examples, shared by the runnable examples (`cargo run --example
//! NAME`) and by the behaviour tests.

pub mod bank;
pub mod bank_service;
pub mod competing;
pub mod dog_school;
pub mod seed;
pub mod shop;
