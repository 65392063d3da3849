//! `make run` (or `cargo run -p assent-core --example quickstart`): the SDK end to end.
//! Starts a stand-in collector on a random local port that prints what it receives,
//! asks for consent, tracks, and flushes. Until the collector (issue 3) lands, this is
//! how to see the SDK work without any set-up.
use std::{collections::HashMap, io::Read, sync::Arc};

use assent_core::{AssentClient, ClientConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| e.to_string())?);
    let url = format!("http://{}", server.server_addr());
    let srv = Arc::clone(&server);
    std::thread::spawn(move || {
        for mut req in srv.incoming_requests() {
            let gzip = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("Content-Encoding") && h.value == "gzip");
            let mut body = Vec::new();
            let _ = req.as_reader().read_to_end(&mut body);
            if gzip {
                let mut out = Vec::new();
                let _ = flate2::read::GzDecoder::new(body.as_slice()).read_to_end(&mut out);
                body = out;
            }
            let batch: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            println!("collector received {} {}:", req.method(), req.url());
            println!(
                "{}",
                serde_json::to_string_pretty(&batch).unwrap_or_default()
            );
            let n = batch["batch"].as_array().map_or(0, |b| b.len());
            let answer = format!(r#"{{"accepted":{n},"duplicates":0,"rejected":[]}}"#);
            let _ = req.respond(tiny_http::Response::from_string(answer));
        }
    });

    let dir = std::env::temp_dir().join(format!("assent-quickstart-{}", std::process::id()));
    let mut config = ClientConfig::new(
        url,
        "demo-write-key",
        dir.to_string_lossy(),
        "com.example.demo",
        "2026-01",
    );
    config.user_id_pepper = Some("demo-pepper-at-least-16-bytes".into());
    let client = AssentClient::new(config)?;
    println!("pseudonymous id: {}", client.pseudonymous_id());
    println!("needs prompt: {}", client.consent().needs_prompt);
    println!(
        "track before consent -> {}",
        client.track("Opened".into(), "{}".into(), None)?
    );

    client.set_consent(
        HashMap::from([("analytics".to_string(), true)]),
        "custom".into(),
    )?;
    client.identify("Alice@Example.com".into(), r#"{"plan":"pro"}"#.into())?;
    println!(
        "track after consent  -> {}",
        client.track("Opened".into(), r#"{"screen":"home"}"#.into(), None)?
    );
    println!(
        "advertising (denied) -> {}",
        client.track("Ad Seen".into(), "{}".into(), Some("advertising".into()))?
    );
    println!("queued: {}", client.queued_count());
    let result = client.flush()?;
    println!("flush: {result:?}");
    client.shutdown();
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
