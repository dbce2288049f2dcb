//! For clients of the gateway (the CLI, the examples, the tests): a channel that presents an
//! API key on every call.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// A channel to the gateway that presents an API key on every call.
pub type GatewayChannel = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer <key>` to every request (nothing when there is no key).
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "BearerToken(redacted)" } else { "BearerToken(none)" })
    }
}

impl BearerToken {
    /// `None` for a key that is not printable ASCII (no real key is).
    pub fn new(token: &str) -> Option<BearerToken> {
        MetadataValue::try_from(format!("Bearer {}", token.trim())).ok().map(|value| BearerToken(Some(value)))
    }

    /// No key: for the health service, or to see a refusal.
    pub fn none() -> BearerToken {
        BearerToken(None)
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `channel`, presenting `token` on every call.
pub fn with_key(channel: Channel, token: &str) -> Option<GatewayChannel> {
    BearerToken::new(token).map(|bearer| InterceptedService::new(channel, bearer))
}

/// The end message of an upload of `file`.
pub fn upload_end(file: &[u8]) -> super::proto::UploadEnd {
    let end = crate::app::UploadEnd::of(file);
    super::proto::UploadEnd { byte_count: end.byte_count, sha256: end.sha256 }
}

/// An upload of a registry file held in memory: its chunks, then its end.
pub fn registry_upload(file: &[u8], chunk_bytes: usize) -> Vec<super::proto::ImportRegistryRequest> {
    use super::proto::{import_registry_request::Part, ImportRegistryRequest};
    let mut messages: Vec<_> = file.chunks(chunk_bytes.max(1)).map(|c| ImportRegistryRequest { part: Some(Part::Chunk(c.to_vec())) }).collect();
    messages.push(ImportRegistryRequest { part: Some(Part::End(upload_end(file))) });
    messages
}

/// An upload of an ACH return file held in memory: its chunks, then its end.
pub fn returns_upload(file: &[u8], chunk_bytes: usize) -> Vec<super::proto::ImportReturnsRequest> {
    use super::proto::{import_returns_request::Part, ImportReturnsRequest};
    let mut messages: Vec<_> = file.chunks(chunk_bytes.max(1)).map(|c| ImportReturnsRequest { part: Some(Part::Chunk(c.to_vec())) }).collect();
    messages.push(ImportReturnsRequest { part: Some(Part::End(upload_end(file))) });
    messages
}

/// An upload of a remittance file held in memory: the header, its chunks, then its end.
pub fn remittance_upload(
    header: super::proto::RemittanceHeader,
    file: &[u8],
    chunk_bytes: usize,
) -> Vec<super::proto::SubmitRemittanceRequest> {
    use super::proto::{submit_remittance_request::Part, SubmitRemittanceRequest};
    let mut messages = vec![SubmitRemittanceRequest { part: Some(Part::Header(header)) }];
    messages.extend(file.chunks(chunk_bytes.max(1)).map(|c| SubmitRemittanceRequest { part: Some(Part::Chunk(c.to_vec())) }));
    messages.push(SubmitRemittanceRequest { part: Some(Part::End(upload_end(file))) });
    messages
}
