//! Checks of the deployed configuration that need no server.

use e2e::repo_root;

/// Vars that only a local dev server or the tests may set: the local account, and provider
/// endpoints pointed at a fake.
const DEV_ONLY: &[&str] = &["DEV_LOGIN", "OAUTH_TEST_ENDPOINTS"];

fn wrangler_toml() -> toml::Table {
    let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).expect("wrangler.toml");
    text.parse().expect("wrangler.toml is valid TOML")
}

/// Every `[vars]` table: the top level's and each `[env.<name>.vars]`.
fn var_tables(config: &toml::Table) -> Vec<(String, toml::Table)> {
    let mut tables = Vec::new();
    if let Some(vars) = config.get("vars").and_then(|v| v.as_table()) {
        tables.push(("top level".to_owned(), vars.clone()));
    }
    if let Some(envs) = config.get("env").and_then(|v| v.as_table()) {
        for (name, env) in envs {
            if let Some(vars) = env.get("vars").and_then(|v| v.as_table()) {
                tables.push((format!("env.{name}"), vars.clone()));
            }
        }
    }
    tables
}

fn enabled(value: &toml::Value) -> bool {
    match value {
        toml::Value::Boolean(b) => *b,
        toml::Value::String(s) => !s.is_empty() && s != "false",
        _ => true,
    }
}

#[test]
fn wrangler_toml_never_enables_the_local_account_or_test_endpoints_in_any_environment() {
    let config = wrangler_toml();
    for (place, vars) in var_tables(&config) {
        for name in DEV_ONLY {
            if let Some(value) = vars.get(*name) {
                assert!(
                    !enabled(value),
                    "{place} sets {name} = {value}: dev/test only"
                );
            }
        }
    }
}

#[test]
fn the_check_would_catch_dev_login_in_a_named_environment() {
    let config: toml::Table = "[env.production.vars]\nDEV_LOGIN = \"true\"\n"
        .parse()
        .expect("toml");
    let tables = var_tables(&config);
    assert_eq!(tables.len(), 1);
    assert!(enabled(&tables[0].1["DEV_LOGIN"]));
    assert!(!enabled(&toml::Value::String("false".into())));
    assert!(!enabled(&toml::Value::Boolean(false)));
}
