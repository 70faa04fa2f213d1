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
    http::Method,
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

/// Answers for one route pattern.
#[derive(Default)]
struct RouteStats {
    /// Count by method and status; a route sees a handful of these.
    answers: Vec<(Method, u16, u64)>,
    latency: Histogram,
}

/// Counters keyed so that recording an answer allocates nothing once its
/// labels have been seen.
#[derive(Default)]
struct Registry {
    routes: BTreeMap<String, RouteStats>,
    /// By whose key paid, then by outcome.
    upstream_requests: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Metrics {
    pub fn record_http(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let stats = match registry.routes.get_mut(route) {
            Some(stats) => stats,
            None => registry.routes.entry(route.to_owned()).or_default(),
        };
        match stats
            .answers
            .iter_mut()
            .find(|(m, s, _)| m == method && *s == status)
        {
            Some((_, _, count)) => *count += 1,
            None => stats.answers.push((method.clone(), status, 1)),
        }
        stats.latency.observe(elapsed);
    }

    pub fn record_upstream(&self, source: &'static str, status: &str) {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let by_status = registry.upstream_requests.entry(source).or_default();
        match by_status.get_mut(status) {
            Some(count) => *count += 1,
            None => {
                by_status.insert(status.to_owned(), 1);
            }
        }
    }

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
        for (route, stats) in &registry.routes {
            let route = escape(route);
            let mut answers: Vec<_> = stats.answers.iter().collect();
            answers.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
            for (method, status, count) in answers {
                let _ = writeln!(
                    out,
                    "keyward_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}",
                );
            }
        }
        out.push_str(
            "# HELP keyward_http_request_duration_seconds Time to response headers, by route.\n",
        );
        out.push_str("# TYPE keyward_http_request_duration_seconds histogram\n");
        for (route, stats) in &registry.routes {
            let (route, histogram) = (escape(route), &stats.latency);
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
        for (source, by_status) in &registry.upstream_requests {
            for (status, count) in by_status {
                let _ = writeln!(
                    out,
                    "keyward_upstream_requests_total{{source=\"{source}\",status=\"{}\"}} {count}",
                    escape(status)
                );
            }
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

/// The method as a label: one of HTTP's own, or `OTHER`, so a client
/// inventing method names cannot grow the label set (and memory).
fn known_method(method: &Method) -> Method {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(method) {
        method.clone()
    } else {
        Method::from_bytes(b"OTHER").expect("a valid method token")
    }
}

/// Middleware recording each request under its route pattern (never the raw
/// path, so ids in URLs do not explode the label set).
pub async fn track_http(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = known_method(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    metrics.record_http(
        &method,
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let invented = Method::from_bytes(b"XYZZY").unwrap();
        assert_eq!(known_method(&invented).as_str(), "OTHER");
        assert_eq!(known_method(&Method::POST), Method::POST);
    }

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record_http(&Method::GET, "/healthz", 200, Duration::from_millis(3));
        metrics.record_http(&Method::GET, "/healthz", 200, Duration::from_millis(30));
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
