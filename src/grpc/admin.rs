//! The admin service: API keys. Converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::proto;
use super::services::{caller_of, understood};
use crate::app::access::KeyView;
use crate::app::{App, AppError, NewKey};
use crate::domain::access::Action;
use crate::domain::Fein;

pub struct Admin(pub App);

pub fn api_key(key: KeyView) -> proto::ApiKey {
    proto::ApiKey {
        key_id: key.key_id,
        name: key.name,
        role: super::convert::role(key.role) as i32,
        feins: key.feins.iter().map(Fein::to_string).collect(),
        client_cert_sha256: key.client_cert_sha256,
        create_time: super::convert::timestamp(&key.created_at),
        revoke_time: key.revoked_at.as_deref().and_then(super::convert::timestamp),
    }
}

fn new_key(request: proto::CreateApiKeyRequest) -> Result<NewKey, AppError> {
    let role = super::convert::role_of("role", request.role)?;
    let feins = request
        .feins
        .iter()
        .map(|f| Fein::parse(f.trim()).map_err(|e| AppError::invalid("feins", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let client_cert_sha256 = request.client_cert_sha256.map(|f| f.trim().to_owned()).filter(|f| !f.is_empty());
    Ok(NewKey { role, name: request.name, feins, client_cert_sha256 })
}

#[tonic::async_trait]
impl proto::admin_service_server::AdminService for Admin {
    async fn create_api_key(&self, request: Request<proto::CreateApiKeyRequest>) -> Result<Response<proto::CreateApiKeyResponse>, Status> {
        let caller = caller_of(&request)?;
        let new = understood(&self.0, &caller, Action::CreateApiKey, new_key(request.into_inner())).await?;
        let created = self.0.create_key(&caller, new).await?;
        Ok(Response::new(proto::CreateApiKeyResponse { key: Some(api_key(created.key)), token: created.token }))
    }

    async fn list_api_keys(&self, request: Request<proto::ListApiKeysRequest>) -> Result<Response<proto::ListApiKeysResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let page = crate::app::paging::PageRequest::parse(crate::app::access::KEY_LIST, request.page_size, &request.page_token);
        let page = super::services::understood(&self.0, &caller, crate::domain::access::Action::ListApiKeys, page).await?;
        let page = self.0.list_keys_page(&caller, page).await?;
        Ok(Response::new(proto::ListApiKeysResponse { keys: page.items.into_iter().map(api_key).collect(), next_page_token: page.next_page_token }))
    }

    async fn revoke_api_key(&self, request: Request<proto::RevokeApiKeyRequest>) -> Result<Response<proto::RevokeApiKeyResponse>, Status> {
        let caller = caller_of(&request)?;
        let key_id = request.into_inner().key_id;
        let key = self.0.revoke_key(&caller, &key_id).await?;
        Ok(Response::new(proto::RevokeApiKeyResponse { key: Some(api_key(key)) }))
    }
}
