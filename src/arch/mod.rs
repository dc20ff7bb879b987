//! Architecture support. Only aarch64 exists; the pure parts (exception
//! decoding) also build on the host so they can be unit tested.

pub mod aarch64;
