//! The repository's own production configuration and notices, checked on every test run.

use xtask::check::check;
use xtask::config::environment;
use xtask::deploy::plan;
use xtask::notices;
use xtask::repo_root;
use xtask::scan::scan_dir;

#[test]
fn the_production_environment_declares_every_binding_the_worker_reads() {
    let plan = plan(&repo_root(), "production").expect("plan");
    for warning in &plan.report.warnings {
        println!("warning: {warning}");
    }
    assert_eq!(plan.report.errors, Vec::<String>::new());
    // The scan must see the bindings, or the check above proves nothing.
    for name in [
        "DB",
        "ROOMS",
        "AVATARS",
        "AI",
        "VECTORIZE",
        "SESSION_LIMITER",
        "LOG_LIMITER",
        "LOGGER",
        "METRICS",
        "ANALYTICS",
        "VITALS_LIMITER",
    ] {
        assert!(
            plan.env.binding(name).is_some(),
            "[env.production] lacks {name}"
        );
    }
    // The logs are the logging Worker's: it is deployed with this one and owns the namespace.
    assert!(plan.env.binding("LOGS").is_none());
    let logger = plan.companions.first().expect("the logging Worker");
    assert_eq!(logger.env.worker, "durable-chat-logger");
    assert!(logger.env.binding("LOGS").is_some());
    assert_eq!(plan.dimensions, Some(384), "{}", plan.embedding_model);
}

#[test]
fn the_local_configuration_lacks_only_what_cannot_run_offline() {
    let text = std::fs::read_to_string(repo_root().join("wrangler.toml")).expect("wrangler.toml");
    let config: toml::Table = text.parse().expect("toml");
    let local = environment(&config, None).expect("top level");
    let scan = scan_dir(&repo_root().join("edge/src")).expect("scan");
    let report = check("the top level", &local, &scan);
    // Workers AI and Vectorize have no offline emulation: locally the assistant uses an
    // OpenAI-compatible server and search is full-text only. Analytics Engine's local stand-in
    // cannot be queried, so locally the Metrics object writes its minutes to D1 instead.
    let unexpected: Vec<_> = report
        .errors
        .iter()
        .filter(|e| !e.contains("`AI`") && !e.contains("`VECTORIZE`") && !e.contains("`ANALYTICS`"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert!(report.errors.iter().any(|e| e.contains("`VECTORIZE`")));
}

#[test]
fn every_crate_in_the_worker_and_the_app_has_an_allowed_license_and_the_notices_list_it() {
    let crates = notices::shipped_crates(&repo_root()).expect("cargo metadata");
    assert!(
        crates.iter().any(|c| c.name == "worker") && crates.iter().any(|c| c.name == "yew"),
        "the Worker's and the app's dependencies are both found"
    );
    for not_shipped in ["fantoccini", "llama-cpp-2", "regex"] {
        assert!(
            !crates.iter().any(|c| c.name == not_shipped),
            "{not_shipped} (tests, model server, xtask) is not shipped"
        );
    }
    assert_eq!(notices::disallowed(&crates), Vec::<&notices::Crate>::new());
    let path = repo_root().join("THIRD_PARTY_NOTICES.md");
    let text = std::fs::read_to_string(&path).expect("THIRD_PARTY_NOTICES.md");
    let updated = notices::update(&text, &crates).expect("the generated section's markers");
    assert!(
        updated == text,
        "THIRD_PARTY_NOTICES.md is out of date: run ./scripts/notices"
    );
}
