//! passerelle: the wire layer (generated gRPC code, conversions, services, TLS serving) and the CLI.
//!
//! The crates under `crates/` hold everything that does not know about the
//! wire; this package converts at the edge and hosts the `passerelle` binary.

pub mod admin;
pub mod analytics;
pub mod authz;
pub mod backup;
pub mod cli;
pub mod client;
pub mod convert;
pub mod demo;
pub mod error;
pub mod federation;
pub mod limits;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod services;

/// Code generated from `proto/` by `build.rs`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    pub mod google {
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
    pub mod passerelle {
        pub mod v1 {
            tonic::include_proto!("passerelle.v1");
        }
    }
    pub use google::rpc;
    pub use passerelle::v1;

    /// The encoded descriptor set of every proto file, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/passerelle_descriptor.bin"));
}

/// The software version, as `Hello` and `status` report it.
pub const NODE_VERSION: &str = env!("CARGO_PKG_VERSION");
