//! A graphql-transport-ws client for tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, or what it said.
#[derive(Debug, PartialEq)]
pub enum Event {
    Message(Value),
    Closed(Option<u16>),
}

impl WsClient {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with_protocol(url, Some("graphql-transport-ws")).await
    }

    pub async fn connect_with_protocol(url: &str, protocol: Option<&str>) -> Self {
        let mut request = url.into_client_request().unwrap();
        if let Some(protocol) = protocol {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(protocol).unwrap(),
            );
        }
        let (socket, _) = connect_async(request).await.expect("WebSocket connects");
        Self { socket }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends connection_init with this payload and expects the ack.
    pub async fn init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let ack = self.next().await;
        assert_eq!(
            ack,
            Event::Message(json!({ "type": "connection_ack" })),
            "expected connection_ack"
        );
    }

    pub async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "type": "subscribe", "id": id, "payload": { "query": query } }))
            .await;
    }

    /// The next protocol message or the close, within 10 seconds.
    pub async fn next(&mut self) -> Event {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a message in time")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            return Some(match message {
                Some(Ok(Message::Text(text))) => {
                    Event::Message(serde_json::from_str(&text).unwrap())
                }
                Some(Ok(Message::Close(frame))) => Event::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Event::Closed(None),
            });
        }
    }

    /// Waits for the server to close the connection and returns the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Event::Closed(code) => return code,
                Event::Message(_) => continue,
            }
        }
    }
}
