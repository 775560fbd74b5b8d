//! `npm search`: `GET /-/v1/search`.

use airlock_npm::PackageName;
use airlock_store::format_time;
use serde_json::{Value, json};

use crate::Registry;
use crate::auth::Principal;
use crate::error::Result;

/// npm's default page is 20; npmjs caps `size` at 250.
const MAX_SIZE: u64 = 250;

pub struct SearchQuery {
    pub text: String,
    pub from: u64,
    pub size: u64,
}

pub struct SearchResult {
    pub objects: Vec<Value>,
    pub total: u64,
}

impl Registry {
    pub async fn search(
        &self,
        principal: Option<&Principal>,
        query: &SearchQuery,
        base_url: &str,
    ) -> Result<SearchResult> {
        self.require_reader(principal)?;
        let terms: Vec<String> = query
            .text
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        let size = query.size.clamp(1, MAX_SIZE);
        let (names, total) = self.packages.search(&terms, query.from, size).await?;
        let mut objects = Vec::new();
        for name in names {
            let Ok(parsed) = PackageName::parse(&name) else {
                continue;
            };
            let Ok(state) = self.load_readable(principal, &parsed).await else {
                continue;
            };
            let Some(latest) = state.dist_tags.get("latest").and_then(|l| {
                state
                    .versions
                    .iter()
                    .find(|v| &v.version == l && v.is_live())
            }) else {
                continue;
            };
            let m = &latest.manifest;
            objects.push(json!({
                "package": {
                    "name": name,
                    "scope": parsed.scope().unwrap_or("unscoped"),
                    "version": latest.version,
                    "description": m.get("description").cloned().unwrap_or(Value::Null),
                    "keywords": m.get("keywords").cloned().unwrap_or(json!([])),
                    "date": format_time(latest.published_at),
                    "links": { "npm": format!("{base_url}{name}") },
                    "publisher": { "username": latest.publisher.name, "email": latest.publisher.email },
                    "maintainers": state.maintainers.iter().map(|p| json!({ "username": p.name, "email": p.email })).collect::<Vec<_>>(),
                },
                "score": { "final": 1.0, "detail": { "quality": 1.0, "popularity": 1.0, "maintenance": 1.0 } },
                "searchScore": 1.0,
            }));
        }
        Ok(SearchResult { objects, total })
    }
}
