//! TLS on the gRPC port (`WARDEN_TLS_CERT_FILE`, `WARDEN_TLS_KEY_FILE`): rustls with ring, and a
//! certificate re-read when its files change, so a renewed certificate is served without a restart.
//! With `WARDEN_TLS_CLIENT_CA_FILE`, every client must present a certificate that CA issued (the CA
//! file re-read the same way); its SAN URIs reach each request in `PeerInfo`, where `call.rs` maps
//! them to an organisation's service principal.
use std::{
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
        client::danger::HandshakeSignatureValid,
        pki_types::UnixTime,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
        server::{
            ClientHello, ResolvesServerCert, WebPkiClientVerifier,
            danger::{ClientCertVerified, ClientCertVerifier},
        },
        sign::CertifiedKey,
    },
    server::TlsStream,
};
use tokio_stream::{Stream, StreamExt as _, wrappers::ReceiverStream};
use tonic::transport::server::{Connected, TcpConnectInfo};
use warden_core::{Error, clock::Clock};

/// The files are looked at no more often than this: a handshake costs no file read in between.
const RECHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// SAN URIs read from one client certificate at most: each may cost a database read.
const MAX_CLIENT_URIS: usize = 8;
/// How long the acceptor waits after a failed accept.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// Handshakes finished but not yet taken by the server; the acceptor waits when it is full.
const ACCEPTED_BACKLOG: usize = 128;

/// The certificate and key files of the gRPC port, and the CA its clients' certificates must chain to.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    /// Also offer HTTP/1.1 in ALPN: the HTTP listener (`http/`), whose clients may not speak h2.
    pub http1: bool,
}

/// A value built from files, rebuilt when their bytes change into something that builds. Files that
/// do not read or build (often a rotation caught between two writes) keep the previous value; the
/// next look, a second later, sees the finished files.
struct Reloading<T> {
    /// What the logs call the value.
    name: &'static str,
    paths: Vec<PathBuf>,
    build: fn(&[Vec<u8>]) -> Result<T, String>,
    clock: Arc<dyn Clock>,
    current: Mutex<Reloaded<T>>,
}

struct Reloaded<T> {
    value: T,
    bytes: Vec<Vec<u8>>,
    checked_at: DateTime<Utc>,
}

impl<T: Clone> Reloading<T> {
    /// Reads and builds once; files that do not read or build stop the start with their reason.
    fn load(
        name: &'static str,
        paths: Vec<PathBuf>,
        build: fn(&[Vec<u8>]) -> Result<T, String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        let bytes = read_files(&paths).map_err(Error::internal)?;
        let value = build(&bytes).map_err(Error::internal)?;
        let checked_at = clock.now();
        Ok(Self {
            name,
            paths,
            build,
            clock,
            current: Mutex::new(Reloaded {
                value,
                bytes,
                checked_at,
            }),
        })
    }

    /// The value to use now, after re-reading the files if a second has passed.
    fn current(&self) -> T {
        let mut loaded = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.clock.now();
        if now - loaded.checked_at >= RECHECK_EVERY || now < loaded.checked_at {
            loaded.checked_at = now;
            let name = self.name;
            match read_files(&self.paths) {
                Ok(bytes) if bytes == loaded.bytes => {}
                Ok(bytes) => match (self.build)(&bytes) {
                    Ok(value) => {
                        tracing::info!(file = %self.paths[0].display(), "{name} reloaded");
                        loaded.value = value;
                        loaded.bytes = bytes;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "{name} does not load; keeping the previous one")
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "{name} cannot be read; keeping the previous one")
                }
            }
        }
        loaded.value.clone()
    }
}

fn read_files(paths: &[PathBuf]) -> io::Result<Vec<Vec<u8>>> {
    paths.iter().map(|path| read_file(path)).collect()
}

/// The serving certificate: the one loaded last, replaced when the files hold a different, valid
/// pair. A pair that does not load (half-written, key not matching) keeps the previous one served.
pub struct RotatingCertificate {
    files: TlsFiles,
    pair: Reloading<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for RotatingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingCertificate")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl RotatingCertificate {
    /// Loads the pair once; a missing or invalid pair stops the start with its reason.
    pub fn load(files: TlsFiles, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let paths = vec![files.cert.clone(), files.key.clone()];
        let pair = Reloading::load("the TLS certificate", paths, certified_key, clock)?;
        Ok(Self { files, pair })
    }

    /// The certificate to serve now, after re-reading the files if a second has passed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.pair.current()
    }
}

impl ResolvesServerCert for RotatingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The certificate chain and its key, from the bytes of the certificate file and the key file.
fn certified_key(files: &[Vec<u8>]) -> Result<Arc<CertifiedKey>, String> {
    let [cert_pem, key_pem] = files else {
        return Err("tls: a certificate file and a key file".to_owned());
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("tls_cert_file: {error}"))?;
    if chain.is_empty() {
        return Err("tls_cert_file: no certificate".to_owned());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| format!("tls_key_file: {error}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|error| format!("tls_key_file: {error}"))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|error| format!("tls_key_file: does not match the certificate: {error}"))?;
    Ok(Arc::new(certified))
}

/// The CA file of client certificates: the verifier built from the file loaded last, rebuilt when
/// the file holds different, valid certificates. A file that does not load keeps the previous CA.
pub struct RotatingClientCa {
    path: PathBuf,
    verifier: Reloading<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for RotatingClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingClientCa")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RotatingClientCa {
    /// Loads the CA file once; a missing, invalid or empty file stops the start with its reason.
    pub fn load(path: PathBuf, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let paths = vec![path.clone()];
        let verifier = Reloading::load("the TLS client CA", paths, client_verifier, clock)?;
        Ok(Self { path, verifier })
    }

    /// The verifier to use now, after re-reading the file if a second has passed.
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.verifier.current()
    }
}

impl ClientCertVerifier for RotatingClientCa {
    // No hints: they would borrow from a verifier that may be replaced, and they are optional
    // (RFC 8446 §4.2.4); a client sends the certificate it has.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}

/// A verifier requiring a certificate that one of the CA file's certificates issued.
fn client_verifier(files: &[Vec<u8>]) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in files
        .iter()
        .flat_map(|pem| CertificateDer::pem_slice_iter(pem))
    {
        let cert = cert.map_err(|error| format!("tls_client_ca_file: {error}"))?;
        roots
            .add(cert)
            .map_err(|error| format!("tls_client_ca_file: {error}"))?;
    }
    // Fails on an empty store: a CA file without a certificate is refused.
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|error| format!("tls_client_ca_file: {error}"))
}

/// The rustls configuration of the gRPC port: HTTP/2 only (gRPC; the HTTP listener adds HTTP/1.1),
/// the certificate from `resolver`, and a client certificate required when `client_ca` is given.
fn server_config(
    resolver: Arc<RotatingCertificate>,
    client_ca: Option<Arc<RotatingClientCa>>,
    http1: bool,
) -> Result<ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::internal)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    if http1 {
        config.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Ok(config)
}

/// What a request knows of its connection: the TCP peer, and the SAN URIs of the client
/// certificate the handshake verified (empty without mutual TLS).
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub tcp: TcpConnectInfo,
    pub client_uris: Arc<[String]>,
}

/// The URI subject alternative names of a verified leaf certificate, in its order. A certificate
/// that does not parse here has none (rustls verified it already; it then maps to nothing).
fn san_uris(leaf: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::{extensions::GeneralName, prelude::FromDer as _};
    let Ok((_, cert)) = x509_parser::certificate::X509Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .take(MAX_CLIENT_URIS)
        .collect()
}

/// One accepted connection of the gRPC port, plaintext or TLS.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Connection {
    // Read once per connection: a certificate's URIs are parsed once, not per request.
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Self::Plain(stream) => PeerInfo {
                tcp: stream.connect_info(),
                client_uris: Arc::new([]),
            },
            Self::Tls(stream) => {
                let (tcp, session) = stream.get_ref();
                let uris = session
                    .peer_certificates()
                    .and_then(<[_]>::first)
                    .map(san_uris)
                    .unwrap_or_default();
                PeerInfo {
                    tcp: tcp.connect_info(),
                    client_uris: uris.into(),
                }
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections of the gRPC port: plaintext, or TLS when `files` is given.
pub fn incoming(
    listener: TcpListener,
    files: Option<TlsFiles>,
    clock: Arc<dyn Clock>,
) -> Result<Incoming, Error> {
    let Some(files) = files else {
        let plain = tokio_stream::wrappers::TcpListenerStream::new(listener)
            .map(|accepted| accepted.map(Connection::Plain));
        return Ok(Incoming::Plain(Box::pin(plain)));
    };
    let http1 = files.http1;
    let client_ca = match files.client_ca.clone() {
        Some(path) => Some(Arc::new(RotatingClientCa::load(path, clock.clone())?)),
        None => None,
    };
    let resolver = Arc::new(RotatingCertificate::load(files, clock)?);
    let acceptor = TlsAcceptor::from(Arc::new(server_config(resolver, client_ca, http1)?));
    let (sender, receiver) = mpsc::channel(ACCEPTED_BACKLOG);
    let task = tokio::spawn(accept_tls(listener, acceptor, sender));
    Ok(Incoming::Tls {
        connections: ReceiverStream::new(receiver),
        acceptor: task,
    })
}

/// Accepts TCP connections and hands over those whose handshake succeeds; each handshake runs on
/// its own task, so a slow or plaintext client never holds up the others.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<io::Result<Connection>>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // A peer reset before accept, or no file descriptor left: the listener goes on,
                // after a pause so that running out of descriptors does not spin a core.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    accepted
                        .send(Ok(Connection::Tls(Box::new(stream))))
                        .await
                        .ok();
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The stream `serve` takes its connections from; dropping it (the server stopped) stops the
/// acceptor task and frees the port.
pub enum Incoming {
    Plain(Pin<Box<dyn Stream<Item = io::Result<Connection>> + Send>>),
    Tls {
        connections: ReceiverStream<io::Result<Connection>>,
        acceptor: JoinHandle<()>,
    },
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::Plain(stream) => stream.as_mut().poll_next(cx),
            Self::Tls { connections, .. } => Pin::new(connections).poll_next(cx),
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Self::Tls { acceptor, .. } = self {
            acceptor.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};
    use warden_core::clock::ManualClock;

    use super::*;

    /// A fresh self-signed certificate for `name`, as PEM (certificate, key).
    fn pair(name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(files: &TlsFiles, (cert, key): &(String, String)) {
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
    }

    fn served(certificate: &RotatingCertificate) -> Vec<u8> {
        certificate.current().cert[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    fn files_in(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: None,
            http1: false,
        }
    }

    #[test]
    fn new_files_are_served_after_a_second_and_a_bad_pair_keeps_the_old_one() {
        let dir = std::env::temp_dir().join(format!("warden-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = files_in(&dir);
        let (first, second) = (pair("localhost"), pair("localhost"));
        write(&files, &first);
        let clock = Arc::new(ManualClock::starting_at(Utc::now()));
        let certificate = RotatingCertificate::load(files.clone(), clock.clone()).unwrap();
        assert_eq!(served(&certificate), der(&first.0));

        write(&files, &second);
        assert_eq!(
            served(&certificate),
            der(&first.0),
            "checked at most once a second"
        );
        clock.advance(chrono::TimeDelta::seconds(1));
        assert_eq!(
            served(&certificate),
            der(&second.0),
            "rotated without a restart"
        );

        // A rotation caught half-way (the new certificate, the old key) is not served.
        std::fs::write(&files.cert, &first.0).unwrap();
        clock.advance(chrono::TimeDelta::seconds(1));
        assert_eq!(served(&certificate), der(&second.0));
        std::fs::write(&files.key, &first.1).unwrap();
        clock.advance(chrono::TimeDelta::seconds(1));
        assert_eq!(served(&certificate), der(&first.0));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_missing_or_mismatched_pair_stops_the_start() {
        let dir = std::env::temp_dir().join(format!("warden-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = files_in(&dir);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(Utc::now()));
        assert!(RotatingCertificate::load(files.clone(), clock.clone()).is_err());
        let (first, second) = (pair("localhost"), pair("localhost"));
        std::fs::write(&files.cert, &first.0).unwrap();
        std::fs::write(&files.key, &second.1).unwrap();
        assert!(RotatingCertificate::load(files, clock).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
