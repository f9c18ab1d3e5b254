//! Shared helpers of the benches: building SAs and packets of a given size for a transform.
#![forbid(unsafe_code)]

pub mod acl;
pub mod rounds;
