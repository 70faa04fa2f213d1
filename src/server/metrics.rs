//! A small Prometheus registry: HTTP requests by route and status, a latency
//! histogram per route, and upstream calls by key source and status.
//! Kept in-process and dependency-free; rendered by `GET /metrics`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

#[derive(Default)]
struct Registry {
    http_requests: BTreeMap<(String, String, u16), u64>,
    http_latency: BTreeMap<String, Histogram>,
    upstream_requests: BTreeMap<(&'static str, String), u64>,
}

#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Metrics {
    pub fn record_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *registry
            .http_requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        registry
            .http_latency
            .entry(route.to_owned())
            .or_default()
            .observe(elapsed);
    }

    /// One upstream (Anthropic) call; `source` is `platform` or `user`.
    pub fn record_upstream(&self, source: &'static str, status: &str) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *registry
            .upstream_requests
            .entry((source, status.to_owned()))
            .or_default() += 1;
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP keyward_http_requests_total HTTP requests answered, by route and status.\n",
        );
        out.push_str("# TYPE keyward_http_requests_total counter\n");
        for ((method, route, status), count) in &registry.http_requests {
            let _ = writeln!(
                out,
                "keyward_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP keyward_http_request_duration_seconds Time to response headers, by route.\n",
        );
        out.push_str("# TYPE keyward_http_request_duration_seconds histogram\n");
        for (route, histogram) in &registry.http_latency {
            let route = escape(route);
            for (count, bound) in histogram.counts.iter().zip(BUCKETS) {
                let _ = writeln!(out, "keyward_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "keyward_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "keyward_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(
                out,
                "keyward_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        out.push_str("# HELP keyward_upstream_requests_total Calls to the Anthropic API, by whose key paid and outcome.\n");
        out.push_str("# TYPE keyward_upstream_requests_total counter\n");
        for ((source, status), count) in &registry.upstream_requests {
            let _ = writeln!(
                out,
                "keyward_upstream_requests_total{{source=\"{source}\",status=\"{}\"}} {count}",
                escape(status)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording each request under its route pattern (never the raw
/// path, so ids in URLs do not explode the label set).
pub async fn track_http(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    metrics.record_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record_http("GET", "/healthz", 200, Duration::from_millis(3));
        metrics.record_http("GET", "/healthz", 200, Duration::from_millis(30));
        metrics.record_upstream("platform", "200");
        let text = metrics.render();
        assert!(text.contains(
            "keyward_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "keyward_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "keyward_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("keyward_http_request_duration_seconds_count{route=\"/healthz\"} 2"));
        assert!(
            text.contains("keyward_upstream_requests_total{source=\"platform\",status=\"200\"} 1")
        );
    }
}
