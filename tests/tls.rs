//! TLS, and client certificates (mTLS) that authenticate as the API key they were registered
//! with. Certificates are made for the test by a throwaway CA.

mod common;

use common::{Backend, TestApp};
use gateway::app::access::certificate_fingerprint;
use gateway::app::{Caller, NewKey};
use gateway::domain::access::Role;
use gateway::grpc::client::{with_key, BearerToken, GatewayChannel};
use gateway::grpc::proto;
use gateway::startup::TlsFiles;
use proto::distribution_service_client::DistributionServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;

/// A certificate and its key, PEM.
struct Pem {
    certificate: String,
    key: String,
    der: Vec<u8>,
}

fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str], purpose: ExtendedKeyUsagePurpose, common_name: &str) -> Pem {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![purpose];
    let certificate = params.signed_by(&key, ca).unwrap();
    Pem { certificate: certificate.pem(), key: key.serialize_pem(), der: certificate.der().to_vec() }
}

struct Pki {
    ca: String,
    server: Pem,
    registered_client: Pem,
    unknown_client: Pem,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "Test agency CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    Pki {
        ca: ca.pem(),
        server: leaf(&ca, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth, "gateway"),
        registered_client: leaf(&ca, &[], ExtendedKeyUsagePurpose::ClientAuth, "acme-payroll"),
        unknown_client: leaf(&ca, &[], ExtendedKeyUsagePurpose::ClientAuth, "stranger"),
    }
}

async fn connect(app: &TestApp, ca: &str, client: Option<&Pem>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(&client.certificate, &client.key));
    }
    Channel::from_shared(format!("https://{}", app.address)).unwrap().tls_config(tls)?.connect().await
}

fn no_key(channel: Channel) -> GatewayChannel {
    InterceptedService::new(channel, BearerToken::none())
}

#[tokio::test]
async fn tls_serves_keys_and_a_registered_client_certificate_authenticates_as_its_key() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let files = TlsFiles {
        certificate: write("server.pem", &pki.server.certificate),
        key: write("server.key", &pki.server.key),
        client_ca: Some(write("ca.pem", &pki.ca)),
    };
    let app = TestApp::spawn_tls(Backend::Sqlite, files).await;
    let operator = Caller::local_operator();
    let key = NewKey {
        role: Role::Vendor,
        name: "acme-payroll".into(),
        feins: Vec::new(),
        client_cert_sha256: Some(certificate_fingerprint(&pki.registered_client.der)),
    };
    app.app.create_key(&operator, key).await.unwrap();
    let back_office = common::make_key(&app.app, Role::BackOffice, "tls-office", &[]).await;

    // The registered certificate alone authenticates, as the vendor it was registered for.
    let channel = no_key(connect(&app, &pki.ca, Some(&pki.registered_client)).await.unwrap());
    let listed = RemittanceServiceClient::new(channel.clone()).list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await;
    assert!(listed.is_ok(), "{listed:?}");
    let denied = DistributionServiceClient::new(channel).run_distribution(proto::RunDistributionRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "a vendor's certificate is a vendor's: {denied:?}");

    // Without a client certificate an API key still works over TLS; with neither, nothing.
    let plain_tls = connect(&app, &pki.ca, None).await.unwrap();
    let office = with_key(plain_tls.clone(), &back_office).unwrap();
    DistributionServiceClient::new(office).run_distribution(proto::RunDistributionRequest {}).await.unwrap();
    let nobody = RemittanceServiceClient::new(no_key(plain_tls)).list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await;
    assert_eq!(nobody.unwrap_err().code(), Code::Unauthenticated);

    // A certificate the CA signed but no key names authenticates nothing.
    let stranger = no_key(connect(&app, &pki.ca, Some(&pki.unknown_client)).await.unwrap());
    let refused = RemittanceServiceClient::new(stranger).list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    // Plain HTTP/2 to a TLS port gets no answer.
    let plain = Channel::from_shared(format!("http://{}", app.address)).unwrap().connect().await;
    if let Ok(plain) = plain {
        let answer = RemittanceServiceClient::new(with_key(plain, &back_office).unwrap())
            .list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() })
            .await;
        assert!(answer.is_err(), "{answer:?}");
    }
    app.stop().await;
}
