use std::net::Ipv6Addr;

use tokio::sync::oneshot;

use super::*;

/// Long enough that a burst of local requests fits in it even on a loaded machine.
const WINDOW: Duration = Duration::from_millis(400);

fn secret() -> Secret {
    Secret::new("s3cret-shared-with-the-relay")
}

struct Running {
    url: String,
    triggers: mpsc::Receiver<String>,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<Result<(), NotifyError>>,
}

async fn start() -> Running {
    let listener = bind("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr());
    let (tx, triggers) = mpsc::channel(16);
    let (stop, stopped) = oneshot::channel::<()>();
    let config =
        NotifyConfig::new(secret(), ["health".to_owned(), "coffee".to_owned()]).debounce(WINDOW);
    let handle = tokio::spawn(serve(listener, config, tx, async {
        let _ = stopped.await;
    }));
    Running {
        url,
        triggers,
        stop,
        handle,
    }
}

impl Running {
    async fn post(&self, body: &str, signature: Option<String>) -> StatusCode {
        let mut request = reqwest::Client::new().post(&self.url).body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let status = request.send().await.unwrap().status();
        StatusCode::from_u16(status.as_u16()).unwrap()
    }

    async fn signed(&self, body: &str) -> StatusCode {
        self.post(body, Some(sign(&secret(), body.as_bytes())))
            .await
    }

    /// Every trigger sent until well after the debounce window.
    async fn triggers(&mut self) -> Vec<String> {
        tokio::time::sleep(WINDOW * 2).await;
        let mut all = Vec::new();
        while let Ok(source) = self.triggers.try_recv() {
            all.push(source);
        }
        all
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.handle.await.unwrap().unwrap();
    }
}

#[test]
fn sign_is_hmac_sha256_in_hex() {
    // RFC 4231, test case 2.
    assert_eq!(
        sign(&Secret::new("Jefe"), b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn a_signed_notification_triggers_its_source_once() {
    let mut server = start().await;
    assert_eq!(
        server.signed(r#"{"source": "health"}"#).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(server.triggers().await, ["health"]);
    server.stop().await;
}

#[tokio::test]
async fn unsigned_or_badly_signed_notifications_are_refused() {
    let mut server = start().await;
    let body = r#"{"source": "health"}"#;
    assert_eq!(server.post(body, None).await, StatusCode::UNAUTHORIZED);
    let wrong_key = sign(&Secret::new("guess"), body.as_bytes());
    assert_eq!(
        server.post(body, Some(wrong_key)).await,
        StatusCode::UNAUTHORIZED
    );
    let other_body = sign(&secret(), br#"{"source": "coffee"}"#);
    assert_eq!(
        server.post(body, Some(other_body)).await,
        StatusCode::UNAUTHORIZED
    );
    let bare_hex = sign(&secret(), body.as_bytes()).replace("sha256=", "");
    assert_eq!(
        server.post(body, Some(bare_hex)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.post(body, Some("sha256=zz".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(server.triggers().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_burst_for_one_source_is_one_trigger() {
    let mut server = start().await;
    for _ in 0..3 {
        assert_eq!(
            server.signed(r#"{"source": "coffee"}"#).await,
            StatusCode::ACCEPTED
        );
    }
    assert_eq!(
        server.signed(r#"{"source": "health"}"#).await,
        StatusCode::ACCEPTED
    );
    let mut triggers = server.triggers().await;
    triggers.sort();
    assert_eq!(triggers, ["coffee", "health"]);
    // After the window, a new notification is a new trigger.
    assert_eq!(
        server.signed(r#"{"source": "coffee"}"#).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(server.triggers().await, ["coffee"]);
    server.stop().await;
}

#[tokio::test]
async fn unknown_sources_and_malformed_bodies_are_refused() {
    let mut server = start().await;
    assert_eq!(
        server.signed(r#"{"source": "steps"}"#).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.signed("source=health").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.signed(r#"{"name": "health"}"#).await,
        StatusCode::BAD_REQUEST
    );
    let huge = format!(
        r#"{{"source": "health", "pad": "{}"}}"#,
        "x".repeat(MAX_BODY)
    );
    assert_eq!(server.signed(&huge).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(server.triggers().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn only_loopback_addresses_are_bound() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.10:8787"] {
        let err = bind(addr.parse().unwrap(), false).await.unwrap_err();
        assert!(
            matches!(err, NotifyError::NotLoopback { .. }),
            "{addr}: {err}"
        );
        assert!(err.to_string().contains("listen_remote"), "{err}");
    }
    assert!(bind("127.0.0.1:0".parse().unwrap(), false).await.is_ok());
    // Asked for, another machine may reach it (inboxes; /notify still answers only loopback).
    assert!(bind("0.0.0.0:0".parse().unwrap(), true).await.is_ok());
}

#[test]
fn loopback_peers_include_mapped_ipv4() {
    assert!(is_loopback("127.0.0.1".parse().unwrap()));
    assert!(is_loopback(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!is_loopback("::ffff:192.0.2.1".parse().unwrap()));
    assert!(!is_loopback("192.0.2.1".parse().unwrap()));
}

#[tokio::test]
async fn a_peer_from_another_machine_is_refused() {
    let (tx, mut rx) = mpsc::channel(1);
    let endpoint = Arc::new(Endpoint {
        config: NotifyConfig::new(secret(), ["health".to_owned()]),
        debouncer: Arc::new(Debouncer::new(Duration::ZERO, tx)),
    });
    let body = r#"{"source": "health"}"#;
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        sign(&secret(), body.as_bytes()).parse().unwrap(),
    );
    let (status, _) = notify(
        State(endpoint),
        ConnectInfo("192.0.2.1:40000".parse().unwrap()),
        headers,
        Bytes::from(body),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn an_empty_secret_is_refused() {
    let listener = bind("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let err = serve(
        listener,
        NotifyConfig::new(Secret::new(""), []),
        tx,
        async {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, NotifyError::EmptySecret), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_debounce_window_opens_at_the_first_notification() {
    let (tx, mut rx) = mpsc::channel(8);
    let debouncer = Arc::new(Debouncer::new(DEFAULT_DEBOUNCE, tx));
    let start = tokio::time::Instant::now();
    for second in [0, 4, 8] {
        tokio::time::sleep_until(start + Duration::from_secs(second)).await;
        debouncer.push("coffee".into());
    }
    // The window does not restart with each notification, so a steady stream still syncs.
    assert_eq!(rx.recv().await.unwrap(), "coffee");
    assert_eq!(start.elapsed(), DEFAULT_DEBOUNCE);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(rx.try_recv().is_err(), "one trigger for the burst");
    debouncer.push("coffee".into());
    assert_eq!(rx.recv().await.unwrap(), "coffee");
    assert_eq!(start.elapsed(), Duration::from_secs(50));
}
