//! Snapshots: a persistent copy of a sandbox's state, usable as a template to create new
//! sandboxes (E2B's `create_snapshot`, `list_snapshots`, `delete_snapshot`).

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::net::{encode_component, query_string};

use super::lifecycle::PauseMode;

/// A snapshot as the API describes it (the spec's `SnapshotInfo`). Create a sandbox from it by
/// passing [`SnapshotInfo::snapshot_id`] as the template
/// ([`E2bOptions::template`](crate::E2bOptions::template)).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The snapshot template's id with its tag (`team-slug/name:default`, or
    /// `templateid:default` for an unnamed snapshot).
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    /// Its full names, with namespace and tag.
    #[serde(default)]
    pub names: Vec<String>,
}

/// How to take a snapshot. The sandbox keeps running either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotOptions {
    pub(crate) name: Option<String>,
    pub(crate) mode: Option<PauseMode>,
}

impl SnapshotOptions {
    /// An unnamed full snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot template's name; a snapshot of a name that exists becomes a new build of
    /// it. Defaults to none (an id is made up).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// What it keeps: [`PauseMode::Filesystem`] makes sandboxes created from it cold-boot
    /// without the source's processes and memory. Defaults to unset: the API's full snapshot.
    pub fn mode(mut self, mode: PauseMode) -> Self {
        self.mode = Some(mode);
        self
    }

    pub(crate) fn body(&self) -> Result<SnapshotBody<'_>, Error> {
        let memory = match self.mode {
            None => None,
            Some(PauseMode::Full) => Some(true),
            Some(PauseMode::Filesystem) => Some(false),
            Some(PauseMode::Unknown) => {
                return Err(Error::InvalidArgument(
                    "PauseMode::Unknown cannot be asked for".into(),
                ));
            }
        };
        Ok(SnapshotBody {
            name: self.name.as_deref().filter(|n| !n.is_empty()),
            memory,
        })
    }
}

/// `SandboxSnapshotRequest`.
#[derive(Debug, Serialize)]
pub(crate) struct SnapshotBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<bool>,
}

/// Filters and paging for listing snapshots (`GET /snapshots`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotQuery {
    pub(crate) sandbox_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) limit: Option<u32>,
    pub(crate) next_token: Option<String>,
}

impl SnapshotQuery {
    /// Every snapshot of the team, the server's page size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only snapshots taken of this sandbox. Defaults to none.
    pub fn sandbox_id(mut self, sandbox_id: impl Into<String>) -> Self {
        self.sandbox_id = Some(sandbox_id.into());
        self
    }

    /// Only the snapshot of this name or id, optionally tag-qualified (`my-snapshot`,
    /// `team/my-snapshot`, `my-snapshot:v1`). Defaults to none.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Page size, 1 to 100 (clamped). Defaults to the server's (100).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit.clamp(1, 100));
        self
    }

    /// Start after a previous page. Defaults to the first page.
    pub fn next_token(mut self, token: impl Into<String>) -> Self {
        self.next_token = Some(token.into());
        self
    }

    /// The query string for one page, from `token`.
    pub(crate) fn to_query(&self, token: Option<&str>) -> String {
        let mut parts = Vec::new();
        if let Some(id) = &self.sandbox_id {
            parts.push(format!("sandboxID={}", encode_component(id)));
        }
        if let Some(name) = &self.name {
            parts.push(format!("name={}", encode_component(name)));
        }
        if let Some(n) = self.limit {
            parts.push(format!("limit={n}"));
        }
        if let Some(t) = token {
            parts.push(format!("nextToken={}", encode_component(t)));
        }
        query_string(&parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_bodies() {
        assert_eq!(SnapshotQuery::new().to_query(None), "");
        let q = SnapshotQuery::new()
            .sandbox_id("sbx 1")
            .name("team/snap:v1")
            .limit(500);
        assert_eq!(
            q.to_query(Some("t/1")),
            "?sandboxID=sbx%201&name=team%2Fsnap%3Av1&limit=100&nextToken=t%2F1"
        );
        let body = |o: SnapshotOptions| serde_json::to_value(o.body().unwrap()).unwrap();
        assert_eq!(body(SnapshotOptions::new().name("")), serde_json::json!({}));
        assert_eq!(
            body(SnapshotOptions::new().name("s").mode(PauseMode::Filesystem)),
            serde_json::json!({"name": "s", "memory": false})
        );
    }
}
