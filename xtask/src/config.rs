//! One environment of `wrangler.toml`, read as the bindings it declares.
//!
//! Wrangler does not let an environment inherit bindings, so `[env.production]` lists each one
//! again; this module reads either the top level or a named environment the same way.

use std::collections::BTreeMap;
use std::fmt;

/// What kind of thing a binding gives the Worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Static assets (served by the runtime; the Worker may also fetch them).
    Assets,
    DurableObject,
    D1,
    R2,
    Kv,
    WorkersAi,
    Vectorize,
    AnalyticsEngine,
    RateLimit,
    /// A service binding to another Worker.
    Service,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Assets => "static assets",
            Kind::DurableObject => "Durable Object namespace",
            Kind::D1 => "D1 database",
            Kind::R2 => "R2 bucket",
            Kind::Kv => "KV namespace",
            Kind::WorkersAi => "Workers AI",
            Kind::Vectorize => "Vectorize index",
            Kind::AnalyticsEngine => "Analytics Engine dataset",
            Kind::RateLimit => "rate limiter",
            Kind::Service => "service binding",
        })
    }
}

/// One binding of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The name the code reads (`env.d1("DB")`).
    pub name: String,
    pub kind: Kind,
    /// What it names on the account: database, bucket, index, dataset, class or Worker.
    pub resource: Option<String>,
    /// The resource's id, where the configuration carries one (D1, KV).
    pub id: Option<String>,
}

impl Binding {
    /// Whether the id is missing or the all-zero placeholder that means "not created yet".
    pub fn needs_id(&self) -> bool {
        matches!(self.kind, Kind::D1 | Kind::Kv)
            && self
                .id
                .as_deref()
                .is_none_or(|id| id.chars().all(|c| c == '0' || c == '-'))
    }
}

/// The bindings, vars and Worker name of one environment.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The Worker's name.
    pub worker: String,
    pub bindings: Vec<Binding>,
    pub vars: BTreeMap<String, String>,
    /// Durable Object classes that a `[[migrations]]` entry creates.
    pub migrated_classes: Vec<String>,
}

impl Environment {
    pub fn binding(&self, name: &str) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.name == name)
    }
}

fn str_of(table: &toml::Table, key: &str) -> Option<String> {
    table.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

fn tables<'a>(table: &'a toml::Table, key: &str) -> Vec<&'a toml::Table> {
    table
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_table()).collect())
        .unwrap_or_default()
}

/// Reads `[env.<name>]`, or the top level when `name` is `None`.
pub fn environment(config: &toml::Table, name: Option<&str>) -> Result<Environment, String> {
    let table = match name {
        None => config,
        Some(name) => config
            .get("env")
            .and_then(|e| e.get(name))
            .and_then(|e| e.as_table())
            .ok_or_else(|| format!("wrangler.toml has no [env.{name}]"))?,
    };
    let worker = str_of(table, "name")
        .or_else(|| {
            // Without its own name, wrangler deploys an environment as `<name>-<env>`.
            let top = str_of(config, "name")?;
            Some(name.map_or(top.clone(), |env| format!("{top}-{env}")))
        })
        .ok_or("wrangler.toml has no Worker name")?;

    let mut bindings = Vec::new();
    let mut push = |name: Option<String>, kind, resource, id| {
        if let Some(name) = name {
            bindings.push(Binding {
                name,
                kind,
                resource,
                id,
            });
        }
    };
    // Assets are inheritable: an environment without its own uses the top level's.
    let assets = table
        .get("assets")
        .or_else(|| config.get("assets"))
        .and_then(|v| v.as_table());
    if let Some(assets) = assets {
        push(
            str_of(assets, "binding"),
            Kind::Assets,
            str_of(assets, "directory"),
            None,
        );
    }
    if let Some(objects) = table.get("durable_objects").and_then(|v| v.as_table()) {
        for b in tables(objects, "bindings") {
            push(
                str_of(b, "name"),
                Kind::DurableObject,
                str_of(b, "class_name"),
                None,
            );
        }
    }
    for b in tables(table, "d1_databases") {
        push(
            str_of(b, "binding"),
            Kind::D1,
            str_of(b, "database_name"),
            str_of(b, "database_id"),
        );
    }
    for b in tables(table, "r2_buckets") {
        push(
            str_of(b, "binding"),
            Kind::R2,
            str_of(b, "bucket_name"),
            None,
        );
    }
    for b in tables(table, "kv_namespaces") {
        push(str_of(b, "binding"), Kind::Kv, None, str_of(b, "id"));
    }
    if let Some(ai) = table.get("ai").and_then(|v| v.as_table()) {
        push(str_of(ai, "binding"), Kind::WorkersAi, None, None);
    }
    for b in tables(table, "vectorize") {
        push(
            str_of(b, "binding"),
            Kind::Vectorize,
            str_of(b, "index_name"),
            None,
        );
    }
    for b in tables(table, "analytics_engine_datasets") {
        push(
            str_of(b, "binding"),
            Kind::AnalyticsEngine,
            str_of(b, "dataset"),
            None,
        );
    }
    for b in tables(table, "ratelimits") {
        push(str_of(b, "name"), Kind::RateLimit, None, None);
    }
    for b in tables(table, "services") {
        push(
            str_of(b, "binding"),
            Kind::Service,
            str_of(b, "service"),
            None,
        );
    }

    let vars = table
        .get("vars")
        .and_then(|v| v.as_table())
        .map(|vars| {
            vars.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    // Migrations belong to the Worker script, whichever environment deploys it.
    let migrated_classes = tables(config, "migrations")
        .into_iter()
        .chain(tables(table, "migrations"))
        .flat_map(|m| {
            ["new_sqlite_classes", "new_classes"]
                .into_iter()
                .filter_map(|k| m.get(k).and_then(|v| v.as_array()))
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(Environment {
        worker,
        bindings,
        vars,
        migrated_classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environment_lists_its_own_bindings_and_inherits_only_assets_and_migrations() {
        let config: toml::Table = r#"
            name = "w"
            [assets]
            directory = "dist"
            binding = "ASSETS"
            [[migrations]]
            tag = "v1"
            new_sqlite_classes = ["Room"]
            [[d1_databases]]
            binding = "LOCAL_ONLY"
            database_name = "x"
            [env.prod]
            [[env.prod.d1_databases]]
            binding = "DB"
            database_name = "db"
            database_id = "00000000-0000-0000-0000-000000000000"
            [[env.prod.kv_namespaces]]
            binding = "LOGS"
            id = "0123456789abcdef0123456789abcdef"
            [env.prod.ai]
            binding = "AI"
        "#
        .parse()
        .expect("toml");
        let env = environment(&config, Some("prod")).expect("env");
        assert_eq!(env.worker, "w-prod");
        let names: Vec<_> = env.bindings.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["ASSETS", "DB", "LOGS", "AI"]);
        assert!(env.binding("DB").is_some_and(Binding::needs_id));
        assert!(!env.binding("LOGS").is_some_and(Binding::needs_id));
        assert!(!env.binding("AI").is_some_and(Binding::needs_id));
        assert_eq!(env.migrated_classes, ["Room"]);
        assert!(environment(&config, Some("staging")).is_err());
    }
}
