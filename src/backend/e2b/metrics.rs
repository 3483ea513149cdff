//! A sandbox's resource use over time (`GET /sandboxes/{id}/metrics`): E2B's `get_metrics`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::net::query_string;

/// One sample of a sandbox's resource use (the spec's `SandboxMetric`). Integer types are the
/// spec's (`int32`, `int64`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SandboxMetric {
    /// When it was taken, in seconds since the Unix epoch.
    pub timestamp_unix: i64,
    /// CPU cores.
    pub cpu_count: i32,
    /// CPU use, in percent of all cores.
    pub cpu_used_pct: f64,
    /// Memory in use, in bytes.
    pub mem_used: i64,
    /// Memory in all, in bytes.
    pub mem_total: i64,
    /// Memory holding the page cache, in bytes (0 where the API does not say).
    #[serde(default)]
    pub mem_cache: i64,
    /// Disk in use, in bytes.
    pub disk_used: i64,
    /// Disk in all, in bytes.
    pub disk_total: i64,
}

/// Which samples [`E2bClient::metrics`](crate::e2b::E2bClient::metrics) asks for. Plain settings
/// with [`Default`]: every sample the API keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsQuery {
    start: Option<SystemTime>,
    end: Option<SystemTime>,
}

impl MetricsQuery {
    /// Every sample the API keeps.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only samples taken at or after `start` (whole seconds). Defaults to none: from the
    /// sandbox's start.
    pub fn start(mut self, start: SystemTime) -> Self {
        self.start = Some(start);
        self
    }

    /// Only samples taken at or before `end` (whole seconds). Defaults to none: until now.
    pub fn end(mut self, end: SystemTime) -> Self {
        self.end = Some(end);
        self
    }

    /// The query string, with `?`, or empty: Unix seconds, a time before 1970 as 0 (the
    /// spec's minimum).
    pub(crate) fn to_query(self) -> String {
        let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let parts: Vec<String> = [("start", self.start), ("end", self.end)]
            .into_iter()
            .filter_map(|(name, t)| Some(format!("{name}={}", seconds(t?))))
            .collect();
        query_string(&parts)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_query_is_unix_seconds() {
        assert_eq!(MetricsQuery::new().to_query(), "");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
        assert_eq!(MetricsQuery::new().start(t).to_query(), "?start=1700000000");
        assert_eq!(
            MetricsQuery::new()
                .start(t)
                .end(t + Duration::from_secs(60))
                .to_query(),
            "?start=1700000000&end=1700000060"
        );
        let before_1970 = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(MetricsQuery::new().end(before_1970).to_query(), "?end=0");
    }

    #[test]
    fn a_sample_parses_as_the_api_sends_it() {
        let json = r#"[{"timestamp": "2026-01-01T00:00:00Z", "timestampUnix": 1767225600,
            "cpuCount": 2, "cpuUsedPct": 12.5, "memUsed": 104857600, "memTotal": 536870912,
            "memCache": 0, "diskUsed": 1048576, "diskTotal": 10737418240}]"#;
        let samples: Vec<SandboxMetric> = serde_json::from_str(json).unwrap();
        assert_eq!(samples[0].cpu_count, 2);
        assert_eq!(samples[0].cpu_used_pct, 12.5);
        assert_eq!(samples[0].disk_total, 10_737_418_240);
    }
}
