//! Does an environment of `wrangler.toml` give the Worker everything its code reads?
//!
//! A binding the code reads but the environment lacks (or declares as another kind) is an
//! error: the Worker would fail at run time, or, for the optional ones (`AI`, `VECTORIZE`),
//! silently run without the feature. A binding the environment declares but the code never
//! reads is a warning: a resource paid for and unused, or one a coming change will read.

use std::collections::BTreeSet;

use crate::config::{Environment, Kind};
use crate::scan::{Scan, Want};
use crate::settings::{self, Need};

/// Errors and warnings, each a sentence.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Checks `env` (named `place` in messages, e.g. `[env.production]`) against the scan: its
/// bindings ([`check_bindings`]) and the settings the code reads.
pub fn check(place: &str, env: &Environment, scan: &Scan) -> Report {
    let mut report = check_bindings(place, env, scan);
    check_settings(place, env, scan, &mut report);
    report
}

/// The bindings alone: each one the code reads is declared with its kind, each declared one is
/// read, each Durable Object class is defined and migrated. (For a Worker that reads no
/// settings, such as the logger.)
pub fn check_bindings(place: &str, env: &Environment, scan: &Scan) -> Report {
    let mut report = Report::default();

    let mut read_names = BTreeSet::new();
    for read in &scan.bindings {
        read_names.insert(read.name.as_str());
        match (env.binding(&read.name), read.want) {
            (None, Want::Kind(kind)) => report.errors.push(format!(
                "{} reads the {kind} `{}`, which {place} does not declare",
                read.at, read.name
            )),
            (None, Want::Any) => report.errors.push(format!(
                "{} reads the binding `{}`, which {place} does not declare",
                read.at, read.name
            )),
            (Some(b), Want::Kind(kind)) if b.kind != kind => report.errors.push(format!(
                "{} reads `{}` as a {kind}, but {place} declares it as a {}",
                read.at, read.name, b.kind
            )),
            _ => {}
        }
    }
    for b in &env.bindings {
        // The runtime itself serves the assets; the code need not read the binding.
        if b.kind != Kind::Assets && !read_names.contains(b.name.as_str()) {
            report.warnings.push(format!(
                "{place} declares the {} `{}`, which the code does not read (yet)",
                b.kind, b.name
            ));
        }
        if b.kind == Kind::DurableObject {
            let class = b.resource.as_deref().unwrap_or_default();
            if !scan.durable_object_classes.contains(class) {
                report.errors.push(format!(
                    "{place} binds `{}` to the class `{class}`, which the code does not define",
                    b.name
                ));
            }
            if !env.migrated_classes.iter().any(|c| c == class) {
                report.errors.push(format!(
                    "no [[migrations]] entry creates the Durable Object class `{class}`"
                ));
            }
        }
    }
    report
}

/// Service bindings name other Workers by their deployed name: each must be one of `workers`,
/// the Workers deployed with this one (the logger), or the binding has nothing to reach.
pub fn check_services(place: &str, env: &Environment, workers: &[&str]) -> Vec<String> {
    env.bindings
        .iter()
        .filter(|b| b.kind == Kind::Service)
        .filter_map(|b| {
            let target = b.resource.as_deref().unwrap_or_default();
            (!workers.contains(&target)).then(|| {
                format!(
                    "{place} binds `{}` to the Worker `{target}`, which is not deployed with it                      (known: {})",
                    b.name,
                    if workers.is_empty() {
                        "none".to_owned()
                    } else {
                        workers.join(", ")
                    }
                )
            })
        })
        .collect()
}

fn check_settings(place: &str, env: &Environment, scan: &Scan, report: &mut Report) {
    for name in &scan.settings {
        if settings::find(name).is_none() {
            report.errors.push(format!(
                "the code reads the setting `{name}`, which xtask/src/settings.rs does not \
                 classify (required secret, optional secret, var or dev-only)"
            ));
        }
    }
    for suffix in &scan.setting_suffixes {
        if !settings::SETTINGS.iter().any(|s| s.name.ends_with(suffix)) {
            report.errors.push(format!(
                "the code builds setting names ending in `{suffix}`, and xtask/src/settings.rs \
                 lists none"
            ));
        }
    }
    for setting in settings::SETTINGS {
        let built = scan.setting_suffixes.iter().any(|suffix| {
            setting
                .name
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| scan.words.contains(prefix))
        });
        if !scan.settings.contains(setting.name) && !built {
            report.warnings.push(format!(
                "xtask/src/settings.rs lists `{}`, which the code does not read",
                setting.name
            ));
        }
    }
    for (name, value) in &env.vars {
        match settings::find(name).map(|s| s.need) {
            Some(Need::DevOnly) => report.errors.push(format!(
                "{place} sets `{name}`, which is for local development and tests only"
            )),
            Some(Need::Required { .. } | Need::Secret) if !value.is_empty() => {
                report.errors.push(format!(
                    "{place} sets the secret `{name}` in plain text: use `wrangler secret put \
                     {name}` instead"
                ))
            }
            None => report.warnings.push(format!(
                "{place} sets `{name}`, which the code does not read"
            )),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::environment;
    use crate::scan::scan_sources;

    fn env_of(toml: &str) -> Environment {
        let config: toml::Table = toml.parse().expect("toml");
        environment(&config, Some("production")).expect("env")
    }

    fn scan_of(src: &str) -> Scan {
        scan_sources(&[("lib.rs".to_owned(), src.to_owned())])
    }

    const CODE: &str = r#"
        #[durable_object]
        pub struct ChatRoom {}
        fn f(env: &Env) {
            env.d1("DB")?;
            env.durable_object("ROOMS")?;
            config::string(env, "SESSION_SECRET");
        }
    "#;

    const CONFIG: &str = r#"
        name = "w"
        [[migrations]]
        tag = "v1"
        new_sqlite_classes = ["ChatRoom"]
        [env.production]
        [[env.production.durable_objects.bindings]]
        name = "ROOMS"
        class_name = "ChatRoom"
        [[env.production.d1_databases]]
        binding = "DB"
        database_name = "db"
    "#;

    #[test]
    fn a_configuration_with_every_binding_the_code_reads_has_no_errors() {
        let report = check("[env.production]", &env_of(CONFIG), &scan_of(CODE));
        assert_eq!(report.errors, Vec::<String>::new());
    }

    #[test]
    fn a_binding_the_code_reads_but_the_configuration_lacks_is_an_error() {
        let config = CONFIG.replace("binding = \"DB\"", "binding = \"OTHER_DB\"");
        let report = check("[env.production]", &env_of(&config), &scan_of(CODE));
        assert_eq!(
            report.errors,
            ["lib.rs:5 reads the D1 database `DB`, which [env.production] does not declare"]
        );
        assert!(report.warnings[0].contains("`OTHER_DB`, which the code does not read"));
    }

    #[test]
    fn a_binding_of_the_wrong_kind_is_an_error_and_an_unread_one_only_a_warning() {
        let config =
            format!("{CONFIG}\n[[env.production.kv_namespaces]]\nbinding = \"LOGS\"\nid = \"0\"\n");
        let code = CODE.replace("env.d1(\"DB\")", "env.d1(\"DB\")?; env.bucket(\"DB\")");
        let report = check("[env.production]", &env_of(&config), &scan_of(&code));
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(report.errors[0].contains("reads `DB` as a R2 bucket"));
        assert!(report
            .warnings
            .iter()
            .any(|w| w.contains("KV namespace `LOGS`, which the code does not read")));
    }

    #[test]
    fn an_unclassified_setting_and_a_dev_only_var_in_production_are_errors() {
        let code = CODE.replace("\"SESSION_SECRET\"", "\"SOMETHING_NEW\"");
        let config = format!("{CONFIG}\n[env.production.vars]\nDEV_LOGIN = \"true\"\n");
        let report = check("[env.production]", &env_of(&config), &scan_of(&code));
        assert!(report.errors.iter().any(|e| e.contains("`SOMETHING_NEW`")));
        assert!(report
            .errors
            .iter()
            .any(|e| e.contains("sets `DEV_LOGIN`, which is for local development")));
    }

    #[test]
    fn a_service_binding_must_name_a_worker_deployed_with_it() {
        let config = format!(
            "{CONFIG}\n[[env.production.services]]\nbinding = \"LOGGER\"\nservice = \"durable-chat-logger\"\n"
        );
        let code = CODE.replace(
            "env.d1(\"DB\")?;",
            "env.d1(\"DB\")?; env.service(\"LOGGER\")?;",
        );
        let env = env_of(&config);
        let report = check("[env.production]", &env, &scan_of(&code));
        assert_eq!(
            report.errors,
            Vec::<String>::new(),
            "read as a service binding"
        );
        assert_eq!(
            check_services("[env.production]", &env, &["durable-chat-logger"]),
            Vec::<String>::new()
        );
        let errors = check_services("[env.production]", &env, &["another-worker"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .contains("`LOGGER` to the Worker `durable-chat-logger`, which is not deployed"));
        // Read as another kind: the kind check still applies to services.
        let as_kv = code.replace("env.service(\"LOGGER\")", "env.kv(\"LOGGER\")");
        let report = check("[env.production]", &env, &scan_of(&as_kv));
        assert!(report.errors[0].contains("reads `LOGGER` as a KV namespace, but [env.production] declares it as a service binding"));
    }

    #[test]
    fn the_bindings_check_alone_says_nothing_of_settings() {
        let code = CODE.replace("\"SESSION_SECRET\"", "\"SOMETHING_NEW\"");
        let report = check_bindings("[env.production]", &env_of(CONFIG), &scan_of(&code));
        assert_eq!(report, Report::default());
    }

    #[test]
    fn a_durable_object_class_the_code_does_not_define_or_no_migration_creates_is_an_error() {
        let config = CONFIG.replace(
            "new_sqlite_classes = [\"ChatRoom\"]",
            "new_sqlite_classes = []",
        );
        let code = CODE.replace("pub struct ChatRoom", "pub struct Renamed");
        let report = check("[env.production]", &env_of(&config), &scan_of(&code));
        assert!(report.errors.iter().any(|e| e.contains("does not define")));
        assert!(report
            .errors
            .iter()
            .any(|e| e.contains("no [[migrations]]")));
    }
}
