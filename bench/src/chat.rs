//! The live-chat benchmark's moving parts: inbound WhatsApp messages POSTed to the webhook
//! as Meta sends them (signed, at a fixed rate, open loop), `chatEvents` subscribers over
//! graphql-transport-ws that time each frame against the instant its message was sent, and
//! idle subscriptions for the memory figure. `main.rs` runs the phases; `chat_report.rs`
//! renders the figures.
//!
//! Latency: every message's text carries its index and the nanoseconds since the run's
//! epoch (an `Instant` of this process) at which it was sent; a subscriber reads both from
//! the frame's `message.text` when the frame arrives.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::{io::AsyncReadExt, net::TcpStream, sync::watch, task::JoinHandle};
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{
        Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};

use crate::load::Summary;

pub const SUBSCRIPTION: &str = "subscription { chatEvents { seq topic message { text } } }";
pub const CONNECT_WHATSAPP: &str =
    "mutation($i: ConnectWhatsAppInput!) { connectWhatsapp(input: $i) { provider } }";
pub const WABA_ID: &str = "102290129340398";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// Distinct contacts writing in; messages go to them in turn.
pub const SENDERS: u64 = 200;
/// Subscriptions being opened at once.
pub const CONNECT_CONCURRENCY: usize = 64;
const TEXT_PREFIX: &str = "bench ";

/// The `X-Hub-Signature-256` header Meta sends: HMAC-SHA256 of the exact body bytes.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The WhatsApp id of sender `i`: an Indian mobile number, `91 98765` and five digits.
pub fn sender(i: u64) -> String {
    format!("9198765{:05}", i % 100_000)
}

/// The text of message `idx`, sent `sent_ns` after the run's epoch.
pub fn message_text(idx: u64, sent_ns: u64) -> String {
    format!("{TEXT_PREFIX}{idx} {sent_ns}")
}

/// A `messages` notification with one text message, shaped as Meta sends it.
pub fn webhook_body(wamid: &str, from: &str, timestamp: i64, text: &str) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": "919000012345",
                        "phone_number_id": PHONE_NUMBER_ID,
                    },
                    "contacts": [{ "profile": { "name": "User" }, "wa_id": from }],
                    "messages": [{
                        "from": from,
                        "id": wamid,
                        "timestamp": timestamp.to_string(),
                        "type": "text",
                        "text": { "body": text },
                    }],
                },
            }],
        }],
    })
    .to_string()
}

/// The message index and send instant in a `next` frame carrying one of our messages
/// (`…"message":{"text":"bench <idx> <ns>"}…`), without parsing the whole frame.
pub fn parse_frame(frame: &str) -> Option<(u64, u64)> {
    const NEEDLE: &str = "\"text\":\"bench ";
    let rest = &frame[frame.find(NEEDLE)? + NEEDLE.len()..];
    let end = rest.find('"')?;
    let (idx, ns) = rest[..end].split_once(' ')?;
    Some((idx.parse().ok()?, ns.parse().ok()?))
}

/// How many idle subscriptions fit under a file-descriptor limit, each costing one
/// descriptor in this process and one in the server, with `reserve` kept for the rest.
pub fn idle_that_fit(requested: usize, limit: u64, reserve: u64) -> usize {
    requested.min(limit.saturating_sub(reserve) as usize)
}

/// Raises RLIMIT_NOFILE (soft, and hard if need be: root may) to at least `need`; servers
/// started afterwards inherit it. Returns the soft limit in force.
pub fn raise_nofile(need: u64) -> u64 {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) } != 0 {
        return 1024;
    }
    if current.rlim_cur >= need {
        return current.rlim_cur;
    }
    let wanted = libc::rlimit {
        rlim_cur: need,
        rlim_max: current.rlim_max.max(need),
    };
    // SAFETY: setrlimit reads the struct; failure leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        return need;
    }
    let at_hard = libc::rlimit {
        rlim_cur: current.rlim_max,
        rlim_max: current.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &at_hard) } == 0 {
        return current.rlim_max;
    }
    current.rlim_cur
}

/// Where subscribers connect, and as whom.
#[derive(Clone)]
pub struct Endpoint {
    pub ws_url: String,
    pub token: String,
    pub project_id: String,
}

impl Endpoint {
    pub fn new(base: &str, token: &str, project_id: &str) -> Self {
        Self {
            ws_url: format!("{}/graphql/ws", base.replacen("http://", "ws://", 1)),
            token: token.to_owned(),
            project_id: project_id.to_owned(),
        }
    }
}

/// A subscriber's connection once subscribed: its TCP stream, whose frames the subscriber
/// reads itself. The load generator shares the machine's 2 cores with the servers, so its
/// cost per frame matters: tungstenite would zero-fill its read buffer on every read
/// (twice per frame: the read that finds nothing more too) and allocate, validate and wrap
/// each message; here bytes go into a reused buffer and a frame is a slice of it.
pub struct Socket {
    stream: TcpStream,
    /// Read and not yet parsed: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
}

/// Frames larger than this end the subscriber (ours are a few hundred bytes).
const MAX_FRAME: usize = 1 << 20;
/// Reads ask for at least this much room.
const READ_CHUNK: usize = 4 * 1024;

/// A frame from the server: its first byte (FIN and opcode) and where its payload is in
/// `Socket::buf`.
struct RawFrame {
    first: u8,
    payload: std::ops::Range<usize>,
}

const TEXT: u8 = 0x81; // FIN + text; the server never fragments its messages
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;
const PONG: u8 = 0x8A;

impl Socket {
    /// The next frame, reading as needed; `None` when the server closed the stream.
    async fn next_frame(&mut self) -> std::io::Result<Option<RawFrame>> {
        loop {
            if let Some((first, header, len)) = frame_header(&self.buf[self.start..])? {
                let begin = self.start + header;
                if self.buf.len() >= begin + len {
                    self.start = begin + len;
                    return Ok(Some(RawFrame {
                        first,
                        payload: begin..begin + len,
                    }));
                }
            }
            // Parsed bytes go before reading more (usually all of them: nothing to move).
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve(READ_CHUNK);
            // Into the spare capacity, which is not zero-filled.
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// A server frame's first byte, header length and payload length, once the header is in
/// `buf`.
fn frame_header(buf: &[u8]) -> std::io::Result<Option<(u8, usize, usize)>> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err(std::io::Error::other("a masked frame from the server"));
    }
    let (header, len) = match second & 0x7f {
        126 if buf.len() >= 4 => (4, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
        127 if buf.len() >= 10 => (10, u64::from_be_bytes(buf[2..10].try_into().unwrap())),
        126 | 127 => return Ok(None),
        len => (2, u64::from(len)),
    };
    if len > MAX_FRAME as u64 {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    Ok(Some((first, header, len as usize)))
}

/// Connects, initialises (expects `connection_ack`) and subscribes to `chatEvents`.
pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Socket> {
    let mut request = endpoint.ws_url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    // Small buffers: 10,000 connections of the default 128 KiB each would be this
    // process's largest cost. Writes go out at once.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0);
    let uri = request.uri();
    let address = format!(
        "{}:{}",
        uri.host().context("no host in the URL")?,
        uri.port_u16().unwrap_or(80)
    );
    let mut stream = TcpStream::connect(address).await.context("connecting")?;
    stream.set_nodelay(true)?;
    // tungstenite does the handshake and the setup over a borrow of the stream; then the
    // subscriber reads the stream itself.
    let (mut socket, _) = client_async_with_config(request, &mut stream, Some(config))
        .await
        .context("WebSocket handshake")?;
    let init = json!({
        "type": "connection_init",
        "payload": {
            "authorization": format!("Bearer {}", endpoint.token),
            "projectId": endpoint.project_id,
        },
    });
    socket.send(Message::Text(init.to_string().into())).await?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("\"connection_ack\"") => break,
            Some(Ok(Message::Text(text))) => bail!("expected connection_ack, got {text}"),
            Some(Ok(Message::Close(frame))) => bail!("closed before the ack: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before the ack"),
        }
    }
    let subscribe = json!({
        "type": "subscribe",
        "id": "1",
        "payload": { "query": SUBSCRIPTION },
    });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    // tungstenite holds no unread bytes: the server sends nothing after the ack until it
    // has the subscription, and `send` flushed that.
    drop(socket);
    Ok(Socket {
        stream,
        buf: Vec::new(),
        start: 0,
    })
}

/// Opens `count` subscriptions, `CONNECT_CONCURRENCY` at a time. Returns those that opened
/// and the failures (count, first error).
pub async fn open_many(endpoint: &Endpoint, count: usize) -> (Vec<Socket>, usize, Option<String>) {
    let results: Vec<anyhow::Result<Socket>> = futures::stream::iter(0..count)
        .map(|_| async {
            tokio::time::timeout(Duration::from_secs(30), open(endpoint))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no connection_ack within 30 s")))
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(count);
    let mut failed = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(s) => sockets.push(s),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (sockets, failed, first_error)
}

/// What one subscriber saw.
#[derive(Default)]
pub struct Heard {
    pub node: usize,
    /// (message index, latency in µs), in order of arrival.
    pub frames: Vec<(u64, u64)>,
    /// Frames that did not carry one of our messages (state changes, other events).
    pub other_frames: u64,
    /// How the connection ended before it was told to stop, if it did.
    pub ended: Option<String>,
}

/// A subscriber task: reads frames until `stop`, timing ours against the epoch, and
/// counts those of index `counted_from` or later in `counted`.
pub fn listen(
    mut socket: Socket,
    node: usize,
    epoch: Instant,
    counted_from: u64,
    counted: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<Heard> {
    tokio::spawn(async move {
        let mut heard = Heard {
            node,
            ..Heard::default()
        };
        // Kept across frames: made anew on each, it would join and leave the watch's
        // waiter list (a lock shared by every subscriber) for every frame.
        let stopped = stop.changed();
        tokio::pin!(stopped);
        // Bounded: ends when told to stop (or when the connection ends).
        loop {
            tokio::select! {
                biased;
                frame = socket.next_frame() => match frame {
                    Ok(Some(RawFrame { first: TEXT, payload })) => {
                        let now_ns = epoch.elapsed().as_nanos() as u64;
                        let text = std::str::from_utf8(&socket.buf[payload]).unwrap_or_default();
                        if let Some((idx, sent_ns)) = parse_frame(text) {
                            heard.frames.push((idx, now_ns.saturating_sub(sent_ns) / 1000));
                            if idx >= counted_from {
                                counted.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if text.contains("\"type\":\"next\"") {
                            heard.other_frames += 1;
                        } else {
                            heard.ended = Some(format!("the server sent {text}"));
                            break;
                        }
                    }
                    Ok(Some(RawFrame { first: CLOSE, payload })) => {
                        let payload = &socket.buf[payload];
                        let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                        heard.ended = Some(format!("closed by the server: {code:?} {reason}"));
                        break;
                    }
                    // The server does not ping; an answer would not be timed anyway.
                    Ok(Some(RawFrame { first: PING | PONG, .. })) => {}
                    Ok(Some(RawFrame { first, .. })) => {
                        heard.ended = Some(format!("an unexpected frame (first byte {first:#04x})"));
                        break;
                    }
                    Ok(None) => {
                        heard.ended = Some("the connection ended".into());
                        break;
                    }
                    Err(e) => {
                        heard.ended = Some(e.to_string());
                        break;
                    }
                },
                _ = &mut stopped => break,
            }
        }
        heard
    })
}

/// Posts signed webhooks.
pub struct Poster {
    http: reqwest::Client,
    url: String,
    secret: Vec<u8>,
    epoch: Instant,
    /// Makes message ids unique across runs on the same database.
    run: String,
}

/// One webhook POST.
pub struct Posted {
    pub idx: u64,
    pub ok: bool,
    pub response_us: u64,
    pub error: Option<String>,
}

impl Poster {
    pub fn new(base: &str, secret: &str, epoch: Instant, run: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(10))
                .tcp_nodelay(true)
                .build()?,
            url: format!("{base}/webhooks/whatsapp"),
            secret: secret.as_bytes().to_vec(),
            epoch,
            run: run.to_owned(),
        })
    }

    pub async fn post(&self, idx: u64) -> Posted {
        let sent_ns = self.epoch.elapsed().as_nanos() as u64;
        let body = webhook_body(
            &format!("wamid.bench.{}.{idx}", self.run),
            &sender(idx % SENDERS),
            chrono::Utc::now().timestamp(),
            &message_text(idx, sent_ns),
        );
        let signature = sign(&self.secret, body.as_bytes());
        let started = Instant::now();
        let outcome = match self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status();
                match r.bytes().await {
                    Ok(_) if status.is_success() => Ok(()),
                    Ok(b) => Err(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&b[..b.len().min(300)])
                    )),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        Posted {
            idx,
            ok: outcome.is_ok(),
            response_us: started.elapsed().as_micros() as u64,
            error: outcome.err(),
        }
    }

    /// Messages `first..first + count` at `rate` per second on a fixed schedule (open
    /// loop: a slow answer does not delay the next message).
    pub async fn at_rate(self: &Arc<Self>, first: u64, count: u64, rate: u32) -> Vec<Posted> {
        let start = tokio::time::Instant::now();
        let period = Duration::from_secs_f64(1.0 / f64::from(rate));
        let mut posts = Vec::with_capacity(count as usize);
        for k in 0..count {
            tokio::time::sleep_until(start + period.mul_f64(k as f64)).await;
            let poster = self.clone();
            posts.push(tokio::spawn(async move { poster.post(first + k).await }));
        }
        let mut out = Vec::with_capacity(posts.len());
        for p in posts {
            if let Ok(posted) = p.await {
                out.push(posted);
            }
        }
        out
    }
}

/// Delivery figures of a group of subscribers for a set of messages.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    pub subscribers: usize,
    pub latency: Summary,
    /// Frames expected: messages accepted by the webhook × subscribers.
    pub expected: u64,
    /// Distinct (subscriber, message) frames received.
    pub received: u64,
    pub duplicates: u64,
}

impl Delivery {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

/// Latency and losses over the subscribers `heard` for the messages in `expected`.
pub fn delivery<'a>(heard: impl Iterator<Item = &'a Heard>, expected: &HashSet<u64>) -> Delivery {
    let mut samples = Vec::new();
    let mut d = Delivery::default();
    for h in heard {
        d.subscribers += 1;
        d.expected += expected.len() as u64;
        let mut seen = HashSet::with_capacity(expected.len());
        for (idx, latency_us) in &h.frames {
            if !expected.contains(idx) {
                continue;
            }
            if seen.insert(*idx) {
                samples.push(*latency_us);
            } else {
                d.duplicates += 1;
            }
        }
        d.received += seen.len() as u64;
    }
    d.latency = Summary::of(&mut samples);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_meta_s_hmac_sha256_in_hex() {
        // RFC 4231-style check against a well-known HMAC-SHA256 vector.
        assert_eq!(
            sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_ne!(sign(b"key", b"{}"), sign(b"other", b"{}"));
    }

    #[test]
    fn bodies_have_meta_s_shape_and_round_trip_the_text() {
        let text = message_text(42, 1_234_567_890);
        let body = webhook_body("wamid.x.42", &sender(42), 1_700_000_000, &text);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let value = &v["entry"][0]["changes"][0]["value"];
        assert_eq!(v["object"], "whatsapp_business_account");
        assert_eq!(v["entry"][0]["id"], WABA_ID);
        assert_eq!(value["metadata"]["phone_number_id"], PHONE_NUMBER_ID);
        assert_eq!(value["contacts"][0]["wa_id"], "919876500042");
        assert_eq!(value["messages"][0]["from"], "919876500042");
        assert_eq!(value["messages"][0]["timestamp"], "1700000000");
        assert_eq!(value["messages"][0]["text"]["body"], text);
        let frame = serde_json::json!({
            "id": "1", "type": "next",
            "payload": { "data": { "chatEvents": {
                "seq": 7, "topic": "message.created", "message": { "text": text }
            } } }
        })
        .to_string();
        assert_eq!(parse_frame(&frame), Some((42, 1_234_567_890)));
    }

    #[test]
    fn other_frames_are_not_ours() {
        let state = r#"{"id":"1","type":"next","payload":{"data":{"chatEvents":{"seq":3,"topic":"chat.state_changed","message":null}}}}"#;
        assert_eq!(parse_frame(state), None);
        assert_eq!(parse_frame(r#"{"text":"bench x 1"}"#), None);
        assert_eq!(parse_frame(r#"{"text":"bench 5"}"#), None);
    }

    #[test]
    fn frame_headers_of_each_length_form() {
        assert_eq!(frame_header(&[0x81]).unwrap(), None);
        assert_eq!(frame_header(&[0x81, 5, b'h']).unwrap(), Some((0x81, 2, 5)));
        assert_eq!(frame_header(&[0x81, 126, 1]).unwrap(), None);
        assert_eq!(
            frame_header(&[0x81, 126, 0x01, 0x02]).unwrap(),
            Some((0x81, 4, 258))
        );
        let mut long = vec![0x81, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(frame_header(&long).unwrap(), Some((0x81, 10, 70_000)));
        long[2] = 1; // far over the limit
        assert!(frame_header(&long).is_err());
        assert!(frame_header(&[0x81, 0x85, 0, 0, 0, 0]).is_err(), "masked");
    }

    #[tokio::test]
    async fn frames_split_and_joined_across_reads_come_out_whole() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let ((mut server, _), stream) =
            tokio::join!(async { listener.accept().await.unwrap() }, async {
                client.await.unwrap()
            });
        let mut socket = Socket {
            stream,
            buf: Vec::new(),
            start: 0,
        };
        let big = "x".repeat(300);
        let mut bytes = vec![0x81, 2, b'h', b'i', 0x81, 126, 1, 44];
        bytes.extend_from_slice(big.as_bytes());
        bytes.extend_from_slice(&[0x88, 2, 0x0f, 0xa0]);
        let writer = tokio::spawn(async move {
            // Two frames and a part of the third; then the rest, and a close frame.
            server.write_all(&bytes[..20]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            server.write_all(&bytes[20..]).await.unwrap();
        });
        let mut texts = Vec::new();
        while let Some(frame) = socket.next_frame().await.unwrap() {
            texts.push((frame.first, socket.buf[frame.payload].to_vec()));
        }
        writer.await.unwrap();
        assert_eq!(
            texts,
            vec![
                (TEXT, b"hi".to_vec()),
                (TEXT, big.into_bytes()),
                (CLOSE, vec![0x0f, 0xa0])
            ]
        );
    }

    #[test]
    fn senders_are_indian_mobiles() {
        for i in [0, 1, 199, 99_999] {
            let s = sender(i);
            assert_eq!(s.len(), 12, "{s}");
            assert!(s.starts_with("919"), "{s}");
            assert!(s.bytes().all(|b| b.is_ascii_digit()), "{s}");
        }
        assert_ne!(sender(0), sender(199));
    }

    #[test]
    fn idle_subscriptions_fit_under_the_descriptor_limit() {
        assert_eq!(idle_that_fit(10_000, 65_536, 2_048), 10_000);
        assert_eq!(idle_that_fit(10_000, 8_192, 2_048), 6_144);
        assert_eq!(idle_that_fit(10_000, 1_024, 2_048), 0);
    }

    #[test]
    fn delivery_counts_losses_and_duplicates() {
        let expected: HashSet<u64> = [10, 11, 12].into_iter().collect();
        let a = Heard {
            // 9 was a warm-up message: not counted.
            frames: vec![
                (9, 1_000),
                (10, 2_000),
                (11, 3_000),
                (12, 4_000),
                (12, 9_000),
            ],
            ..Heard::default()
        };
        let b = Heard {
            node: 1,
            frames: vec![(10, 5_000), (12, 6_000)],
            ..Heard::default()
        };
        let d = delivery([&a, &b].into_iter(), &expected);
        assert_eq!(d.subscribers, 2);
        assert_eq!(d.expected, 6);
        assert_eq!(d.received, 5);
        assert_eq!(d.lost(), 1);
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.latency.count, 5);
        assert_eq!(d.latency.max_ms, 6.0);
        assert_eq!(d.latency.p50_ms, 4.0);
    }
}
