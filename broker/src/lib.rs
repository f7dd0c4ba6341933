//! The kubeline broker.
