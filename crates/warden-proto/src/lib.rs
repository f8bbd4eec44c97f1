//! The generated warden.v1 API (tonic services and clients, prost messages); nothing hand-written.
#![allow(clippy::all, clippy::pedantic, reason = "generated code")]

/// Package `warden.v1`.
pub mod v1 {
    tonic::include_proto!("warden.v1");
}

/// The encoded file descriptor set of `warden.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
