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
