//! QUIC endpoints for Poros (mutual TLS 1.3 from `poros-certs` configs, sized UDP buffers) and
//! frame IO on streams: one bidirectional stream per operation, a frame then an optional body.
#![forbid(unsafe_code)]

pub mod archive_stream;
pub mod backup_text;
pub mod cid;
pub mod http;
pub mod loglimit;
pub mod progress;
pub mod quic_thread;

use poros_protocol::{Frame, FrameError};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch: the clock both binaries stamp events with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The environment variable that chooses the log format (`human` or `json`); the binaries'
/// `--log-format` option sets it for themselves and for the processes they start.
pub const LOG_FORMAT_ENV: &str = "POROS_LOG_FORMAT";

/// How a Poros process writes its log lines on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event: time, level, span fields, message, event fields.
    #[default]
    Human,
    /// One JSON object per line for log shippers: `timestamp` (RFC 3339, UTC), `level`,
    /// `message`, `target`, the event's fields at the top level (`doc`, `agency`, …), and
    /// `spans`: the enclosing spans, outermost first, each with its `name` and fields.
    Json,
}

impl LogFormat {
    /// The name accepted on the command line and in [`LOG_FORMAT_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }

    /// The format [`LOG_FORMAT_ENV`] names; `human` when it is unset or names none.
    pub fn from_env() -> LogFormat {
        std::env::var(LOG_FORMAT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }

    /// Make this the format of this process and of every process it starts from now on.
    /// Called by the binaries right after parsing their arguments, before any thread exists.
    pub fn export(self) {
        std::env::set_var(LOG_FORMAT_ENV, self.name());
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A log format name that is neither `human` nor `json`.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?}: expected human or json")]
pub struct UnknownLogFormat(String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_string())),
        }
    }
}

/// The JSON event formatter both the log and [`report_error`] use, so a shipper sees one shape.
fn json_format() -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    tracing_subscriber::filter::LevelFilter,
    fn() -> std::io::Stderr,
> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_writer(std::io::stderr as fn() -> std::io::Stderr)
}

/// Install the tracing subscriber of a Poros process: one event per line on stderr, level
/// from `RUST_LOG` (default `info`), in the format [`LOG_FORMAT_ENV`] names (see
/// [`LogFormat`]); colours only in the human format on a terminal.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = match LogFormat::from_env() {
        LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => json_format().with_env_filter(filter).try_init(),
    };
}

/// Print the error that ends a command on stderr: `<program>: error: <text>` in the human
/// format, or one JSON object like a log event (level `ERROR`, the text as `message`, the
/// program as `program`) in the JSON format, whatever `RUST_LOG` says.
pub fn report_error(format: LogFormat, program: &str, text: &str) {
    match format {
        LogFormat::Human => eprintln!("{program}: error: {text}"),
        LogFormat::Json => {
            let subscriber = json_format().with_max_level(tracing::Level::ERROR).finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::error!(target: "poros", program, "{text}");
            });
        }
    }
}

/// Resolves on SIGINT or SIGTERM: how both binaries learn to shut down cleanly.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Size asked for the UDP socket buffers: the kernel default (208 KiB) drops packets on bulk
/// transfers at loopback speeds.
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The shortest interval between two stateless resets the hub sends: none (see
/// [`server_endpoint`]).
pub const RESET_INTERVAL: Duration = Duration::ZERO;

/// Chunk size used when streaming bodies.
pub const CHUNK: usize = 256 * 1024;

/// Transport failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Socket setup failed.
    #[error("socket {addr}: {source}")]
    Socket {
        /// Address concerned.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The TLS configuration is not usable for QUIC.
    #[error("tls configuration not usable for quic: {0}")]
    Tls(String),
    /// The peer sent a frame that does not decode or exceeds limits.
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    /// Reading from the stream failed.
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// Reading from the stream failed.
    #[error("stream read: {0}")]
    ReadStream(#[from] quinn::ReadError),
    /// Writing to the stream failed.
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream was closed by us.
    #[error("stream closed")]
    Closed(#[from] quinn::ClosedStream),
    /// The connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Connecting failed before the handshake.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// Stream ended before the announced body length.
    #[error("stream ended after {got} of {expected} body bytes")]
    ShortBody {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// A local IO failure while streaming a body.
    #[error("body io: {0}")]
    Io(#[from] std::io::Error),
    /// The local body did not hash to the digest it was sent under; the stream was reset, so
    /// the peer never received it as complete.
    #[error("local body does not match its SHA-256 (stream reset)")]
    BodyDamaged,
}

/// Application code with which a body stream is reset when the sender finds, at the end,
/// that the bytes it sent do not match their digest.
pub const RESET_BODY_DAMAGED: u32 = 0x30;

/// Application code with which the hub resets a body it was forwarding while still receiving
/// it (cut-through), because its own reception failed, was refused or could not be stored:
/// the recipient never completes that body and keeps nothing of it.
pub const RESET_BODY_ABANDONED: u32 = 0x31;

/// Limits applied to every connection.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent bidirectional streams a peer may open.
    pub max_streams: u32,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Keep-alive interval (shorter than the idle timeout); `None`: this side sends none and
    /// relies on its peer's.
    pub keep_alive: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 256,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(5)),
        }
    }
}

impl Limits {
    /// An agent's hub connection: `idle` as its idle timeout, keep-alives at a third of it
    /// but never further apart than a third of the hub's own idle timeout, which also bounds
    /// the connection (QUIC takes the smaller of the two sides').
    pub fn agent(idle: Duration) -> Self {
        let hub_idle = Limits::default().idle_timeout;
        Limits {
            idle_timeout: idle,
            keep_alive: Some(idle.min(hub_idle) / 3),
            ..Limits::default()
        }
    }

    /// The hub's side of every connection: `max_streams` per agent and no keep-alives of its
    /// own. Each agent keeps its connection alive, and a ping each way would double the
    /// packets an idle hub handles (ten thousand agents: thousands a second). A silent
    /// agent is still dropped at the idle timeout.
    pub fn hub(max_streams: u32) -> Self {
        Limits {
            max_streams,
            keep_alive: None,
            ..Limits::default()
        }
    }
}

/// Whether a connection attempt ended because the peer refused it (QUIC's
/// `CONNECTION_REFUSED`): a hub that is up but admits no more now (too many handshakes or
/// connections in flight), so worth trying again soon.
pub fn refused_by_peer(e: &quinn::ConnectionError) -> bool {
    matches!(e, quinn::ConnectionError::ConnectionClosed(c)
        if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED)
}

/// Transport parameters for `limits`.
pub fn transport_config(limits: &Limits) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(limits.max_streams.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.keep_alive_interval(limits.keep_alive);
    if let Ok(idle) = quinn::IdleTimeout::try_from(limits.idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    // Loopback and LAN round trips are sub-millisecond, so a few MiB of window keep a stream
    // at full speed while bounding what one connection can make us buffer (flat memory).
    t.stream_receive_window((4u32 * 1024 * 1024).into());
    t.receive_window((8u32 * 1024 * 1024).into());
    t.send_window(8 * 1024 * 1024);
    // Every exchange here is a request answered at once on the same connection, and the
    // answer carries the acknowledgement; asking the peer (QUIC's ACK frequency extension)
    // to acknowledge every tenth packet rather than every other one spares an ACK-only
    // datagram, with its syscall and packet protection, for most requests.
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(quinn::VarInt::from_u32(ACK_ELICITING_THRESHOLD));
    t.ack_frequency_config(Some(acks));
    t
}

/// Ack-eliciting packets a peer may receive before it must acknowledge them.
const ACK_ELICITING_THRESHOLD: u32 = 10;

fn udp_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, WireError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| WireError::Socket { addr, source };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // The kernel caps these at net.core.{r,w}mem_max: say so when it gave less, as packets
    // are then dropped under load and transfers slow down (docs/install.md, "Limits").
    let recv = sock
        .set_recv_buffer_size(UDP_BUFFER_BYTES)
        .and_then(|()| sock.recv_buffer_size());
    let send = sock
        .set_send_buffer_size(UDP_BUFFER_BYTES)
        .and_then(|()| sock.send_buffer_size());
    for (what, sysctl, got) in [
        ("receive", "net.core.rmem_max", recv),
        ("send", "net.core.wmem_max", send),
    ] {
        match got {
            // Linux reports twice the size it was asked for (its own bookkeeping).
            Ok(n) if n >= UDP_BUFFER_BYTES => {}
            Ok(n) => tracing::warn!(
                %addr,
                asked = UDP_BUFFER_BYTES,
                got = n,
                "the system gave the QUIC socket a smaller {what} buffer than asked: raise {sysctl} (sysctl -w {sysctl}={UDP_BUFFER_BYTES}; see docs/install.md, \"Limits\"), or packets are dropped under load"
            ),
            Err(e) => tracing::warn!(
                %addr,
                error = %e,
                "the system refused to size the QUIC socket's {what} buffer: raise {sysctl} (see docs/install.md, \"Limits\")"
            ),
        }
    }
    sock.bind(&addr.into()).map_err(err)?;
    Ok(sock.into())
}

/// A server endpoint (the hub) bound to `addr`.
///
/// `reset_key` keys QUIC stateless resets. It must survive restarts: with a fresh random key
/// a restarted hub's resets are ignored by clients, which then sit out the whole idle timeout
/// before reconnecting.
pub fn server_endpoint(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    limits: &Limits,
    reset_key: &[u8; 32],
) -> Result<quinn::Endpoint, WireError> {
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| WireError::Tls(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(limits)));
    // Address validation round trip is not needed on loopback/private networks; keep defaults.
    let sock = udp_socket(addr)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    // Connection IDs carry a keyed check that packets for unknown connections must pass
    // before a reset is sent; derive that key from the same stable secret, or a restarted
    // hub drops old connections' packets silently instead of resetting them (see `cid`).
    let cid_key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key),
            b"cid",
        )
        .as_ref(),
    );
    config.cid_generator(move || Box::new(cid::KeyedCids::new(cid_key.clone())));
    // After a restart every connected agent's next packet earns a reset. quinn sends at most
    // one per `min_reset_interval` (20 ms by default), and it reads the clock once per pass
    // over the socket: any interval at all allows one reset per batch of packets read
    // together. With 100 µs, agents whose keep-alives arrived together (those admitted
    // together after the last restart) got one reset per batch, the others sat out their
    // idle timeout: 10,000 agents took 39 s to reconnect (`cargo bench --bench scale`). No
    // limit is needed: a reset is always smaller than the packet that caused it (no
    // amplification, no loop), and it is sent only for a connection ID this hub issued (the
    // keyed check above), so a forged packet earns nothing.
    config.min_reset_interval(RESET_INTERVAL);
    // The packet work runs on a thread of its own (see `quic_thread`).
    let io =
        quic_thread::QuicThread::shared().map_err(|source| WireError::Socket { addr, source })?;
    quinn::Endpoint::new(config, Some(server), sock, io)
        .map_err(|source| WireError::Socket { addr, source })
}

/// A client endpoint (an agent) bound to an ephemeral port, with `tls` as default client config.
pub fn client_endpoint(
    tls: rustls::ClientConfig,
    limits: &Limits,
    remote_is_ipv6: bool,
) -> Result<quinn::Endpoint, WireError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| WireError::Tls(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport_config(limits)));
    let bind: SocketAddr = if remote_is_ipv6 {
        "[::]:0".parse().expect("literal address")
    } else {
        "0.0.0.0:0".parse().expect("literal address")
    };
    let sock = udp_socket(bind)?;
    let mut ep = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        sock,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| WireError::Socket { addr: bind, source })?;
    ep.set_default_client_config(client);
    Ok(ep)
}

/// A quinn client configuration from a rustls one (used per connection, so an agent can
/// switch certificates after renewal).
pub fn quic_client_config(
    tls: rustls::ClientConfig,
    limits: &Limits,
) -> Result<quinn::ClientConfig, WireError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| WireError::Tls(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport_config(limits)));
    Ok(client)
}

/// Read one frame (length prefix checked before allocating).
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Frame, WireError> {
    let mut prefix = [0u8; 4];
    recv.read_exact(&mut prefix).await?;
    let len = Frame::check_len(prefix)?;
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf).await?;
    Ok(Frame::decode(&buf)?)
}

/// Write one frame.
pub async fn write_frame(send: &mut quinn::SendStream, frame: &Frame) -> Result<(), WireError> {
    let bytes = frame.encode()?;
    send.write_all(&bytes).await?;
    Ok(())
}

/// Write a request's body with `write` while reading the peer's answer; both outcomes are
/// returned. A peer may answer before it has read the whole body (it holds that document
/// already, or refuses it on its envelope) and stop reading: the write then fails, but the
/// answer stands. Waiting for the write to finish before reading would take that failure
/// for the outcome, and a body larger than the flow-control window would fail every time.
pub async fn write_body_read_answer<T, E>(
    recv: &mut quinn::RecvStream,
    write: impl std::future::Future<Output = Result<T, E>>,
) -> (Result<T, E>, Result<Frame, WireError>) {
    tokio::join!(write, read_frame(recv))
}

/// One request without a body on a new stream: send `frame`, finish, read the answer frame.
pub async fn request(conn: &quinn::Connection, frame: &Frame) -> Result<Frame, WireError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, frame).await?;
    send.finish()?;
    read_frame(&mut recv).await
}

/// Stream exactly `len` bytes of a stored body file to `send`: its blocks go to the stream as
/// they were read from disk, without a copy.
pub async fn send_blob(
    send: &mut quinn::SendStream,
    reader: &mut poros_store::BlobReader,
    len: u64,
) -> Result<(), WireError> {
    let mut left = len;
    while left > 0 {
        let Some(block) = reader.next_block().await.transpose()? else {
            return Err(WireError::ShortBody {
                got: len - left,
                expected: len,
            });
        };
        let block = block.slice(..block.len().min(left as usize));
        left -= block.len() as u64;
        send.write_chunk(block).await?;
    }
    Ok(())
}

/// Stream exactly `len` bytes from `reader` to `send`, hashing them as they go; if they do
/// not hash to `expected`, reset the stream instead of sending the last piece: the peer sees
/// an aborted transfer, never a complete wrong body. The file is read once.
pub async fn send_body_verified<R: tokio::io::AsyncRead + Unpin>(
    send: &mut quinn::SendStream,
    reader: &mut R,
    len: u64,
    expected: &poros_protocol::Digest,
) -> Result<(), WireError> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; (4 * CHUNK).min(len.max(1) as usize)];
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = len;
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let n = reader.read(&mut buf[..want]).await?;
        if n == 0 {
            let _ = send.reset(RESET_BODY_DAMAGED.into());
            return Err(WireError::ShortBody {
                got: len - left,
                expected: len,
            });
        }
        hash.update(&buf[..n]);
        left -= n as u64;
        if left == 0 {
            // The last piece is held back until the digest is known: a peer reading exactly
            // `len` bytes could otherwise complete before the reset reaches it.
            if hash.finish().as_ref() != expected.as_slice() {
                let _ = send.reset(RESET_BODY_DAMAGED.into());
                return Err(WireError::BodyDamaged);
            }
            send.write_all(&buf[..n]).await?;
            return Ok(());
        }
        send.write_all(&buf[..n]).await?;
    }
    // Only an empty body gets here.
    if hash.finish().as_ref() != expected.as_slice() {
        let _ = send.reset(RESET_BODY_DAMAGED.into());
        return Err(WireError::BodyDamaged);
    }
    Ok(())
}

impl WireError {
    /// The application code the peer reset the stream with, if that is how reading failed.
    pub fn reset_code(&self) -> Option<u64> {
        match self {
            WireError::ReadStream(quinn::ReadError::Reset(c))
            | WireError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::Reset(c))) => {
                Some(c.into_inner())
            }
            _ => None,
        }
    }
}

/// Reads exactly the announced number of body bytes from a stream, chunk by chunk, so memory
/// stays flat whatever the body size.
pub struct BodyReader {
    len: u64,
    got: u64,
}

impl BodyReader {
    /// Expect `len` bytes.
    pub fn new(len: u64) -> Self {
        BodyReader { len, got: 0 }
    }

    /// The next chunk, or `None` once all `len` bytes were read. Fails if the stream ends early.
    pub async fn next(
        &mut self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<bytes::Bytes>, WireError> {
        if self.got >= self.len {
            return Ok(None);
        }
        let max = ((self.len - self.got) as usize).min(CHUNK);
        match recv.read_chunk(max, true).await? {
            Some(c) => {
                self.got += c.bytes.len() as u64;
                Ok(Some(c.bytes))
            }
            None => Err(WireError::ShortBody {
                got: self.got,
                expected: self.len,
            }),
        }
    }
}

/// Why a body could not be received.
#[derive(Debug, thiserror::Error)]
pub enum RecvBodyError {
    /// The stream failed or ended early: nothing more can be said to the peer on it.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The body could not be kept, or does not hash to the digest the commit expected
    /// ([`poros_store::StoreError::DigestMismatch`]).
    #[error(transparent)]
    Store(#[from] poros_store::StoreError),
}

/// Receive exactly `len` body bytes from a stream into `sink` (memory or a body file, see
/// [`poros_store::BodySink`]) and commit them as `commit` says: the one receiver of announced
/// bodies, for submissions, deliveries and re-uploads.
pub async fn recv_body(
    recv: &mut quinn::RecvStream,
    len: u64,
    sink: poros_store::BodySink,
    commit: poros_store::Commit,
) -> Result<poros_store::ReceivedBody, RecvBodyError> {
    recv_body_tapped(recv, len, sink, commit, &mut NoTap).await
}

/// Sees each chunk of a body [`recv_body_tapped`] receives, as it comes off the stream and
/// before the sink stores it (the hub's cut-through forwards it to recipients).
pub trait BodyTap {
    /// One chunk, in order; waiting here slows the reception down.
    fn chunk(&mut self, c: &bytes::Bytes) -> impl std::future::Future<Output = ()> + Send;
}

/// The tap of a body nobody else sees.
pub struct NoTap;

impl BodyTap for NoTap {
    async fn chunk(&mut self, _: &bytes::Bytes) {}
}

/// [`recv_body`], with every chunk shown to `tap` first.
pub async fn recv_body_tapped(
    recv: &mut quinn::RecvStream,
    len: u64,
    mut sink: poros_store::BodySink,
    commit: poros_store::Commit,
    tap: &mut impl BodyTap,
) -> Result<poros_store::ReceivedBody, RecvBodyError> {
    let mut r = BodyReader::new(len);
    while let Some(c) = r.next(recv).await? {
        tap.chunk(&c).await;
        sink.write(&c).await?;
    }
    Ok(sink.finish(commit).await?)
}
