//! Raft plumbing: the node's [`Controller`] handle on openraft and the
//! applied state, leader-side group commit ([`proposer`]), coalesced read
//! barriers ([`barrier`]), and the transport to the peers' raft ports —
//! client ([`network`]) and server ([`peer_service`]).

pub mod barrier;
pub mod handle;
pub mod network;
pub mod peer_service;
pub mod peer_tls;
pub mod proposer;

pub use handle::{Controller, LocalStatus};
