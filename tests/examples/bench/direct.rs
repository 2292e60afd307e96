//! The floor: the gateway requests one tool call makes (recorded by the fake gateway from a
//! call after the warm-up, so per-session caches are as in the timed calls), sent directly with
//! a plain keep-alive HTTP client in the same dependency order: `route_request` looks the combo
//! up, then sends the completion, then fetches prices; everything else goes out at once, as
//! the tools' `send-all` does. Host overhead per call = a server's median minus this median.

use omniroute_mcp_tests::RecordedRequest;
use std::time::{Duration, Instant};

/// One recorded gateway request, replayable against any gateway.
#[derive(Clone, Debug)]
pub struct Shape {
    pub method: String,
    /// Path plus `?query`.
    pub target: String,
    pub body: Vec<u8>,
}

pub fn shapes(recorded: &[RecordedRequest]) -> Vec<Shape> {
    recorded
        .iter()
        .map(|r| Shape {
            method: r.method.clone(),
            target: match &r.query {
                Some(q) if !q.is_empty() => format!("{}?{q}", r.path),
                _ => r.path.clone(),
            },
            body: r.body.clone(),
        })
        .collect()
}

/// `GET /a + GET /b` for the table's notes.
pub fn describe(shapes: &[Shape]) -> String {
    shapes.iter().map(|s| format!("{} {}", s.method, s.target)).collect::<Vec<_>>().join(" + ")
}

/// The requests of one call in the order they depend on each other: phases run one after
/// another, the requests of a phase concurrently.
pub fn phases(tool: &str, shapes: &[Shape]) -> Vec<Vec<Shape>> {
    let phase = |shape: &Shape| match tool {
        "route_request" if shape.target.starts_with("/api/combos") => 0,
        "route_request" if shape.target.starts_with("/v1/") => 1,
        "route_request" => 2,
        _ => 0,
    };
    (0..3)
        .map(|p| shapes.iter().filter(|s| phase(s) == p).cloned().collect::<Vec<_>>())
        .filter(|group| !group.is_empty())
        .collect()
}

pub struct Direct {
    client: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl Direct {
    pub fn new(base: &str, api_key: Option<&str>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .tcp_nodelay(true)
            .build()
            .expect("a plain reqwest client builds");
        Self { client, base: base.trim_end_matches('/').to_owned(), api_key: api_key.map(str::to_owned) }
    }

    /// Sends the phases one after another (each phase's requests concurrently), reading every
    /// body; returns the elapsed time.
    pub async fn once(&self, phases: &[Vec<Shape>]) -> Result<Duration, String> {
        let started = Instant::now();
        for shapes in phases {
            self.phase(shapes).await?;
        }
        Ok(started.elapsed())
    }

    async fn phase(&self, shapes: &[Shape]) -> Result<(), String> {
        let sends = shapes.iter().map(|shape| async move {
            let method = reqwest::Method::from_bytes(shape.method.as_bytes()).map_err(|e| e.to_string())?;
            let mut req = self.client.request(method, format!("{}{}", self.base, shape.target));
            if !shape.body.is_empty() {
                req = req.header("content-type", "application/json").body(shape.body.clone());
            }
            if let Some(key) = self.api_key.as_deref().filter(|_| shape.target.starts_with("/v1/")) {
                req = req.bearer_auth(key);
            }
            let response = req.send().await.map_err(|e| format!("{} {}: {e}", shape.method, shape.target))?;
            response.bytes().await.map_err(|e| format!("{} {}: {e}", shape.method, shape.target))?;
            Ok::<(), String>(())
        });
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(())
    }
}
