//! Unit tests of the expansion functions.
