//! The deploy against a fake account: a stand-in for wrangler that keeps the account's
//! resources in files, so creating, writing ids back and idempotency are tested without one.

// The fake wrangler is a bash script.
#![cfg(unix)]

use std::path::{Path, PathBuf};

use xtask::deploy::{run, Options};
use xtask::repo_root;

/// A wrangler that answers the commands the deploy uses from a state directory beside it.
const FAKE_WRANGLER: &str = r#"#!/usr/bin/env bash
state="$(dirname "$0")/state"
mkdir -p "$state"
echo "$*" >> "$state/calls"
case "$1 $2" in
  "deploy --dry-run")
    mkdir -p "$4" && head -c 4096 /dev/urandom > "$4/index.wasm" && echo "Total Upload" ;;
  "deploy --env") echo "Deployed" ;;
  "whoami "*) echo "logged in" ;;
  "d1 list")
    if [ -f "$state/d1" ]; then echo '[{"uuid":"11111111-2222-3333-4444-555555555555","name":"durable-chat"}]'; else echo '[]'; fi ;;
  "d1 create") touch "$state/d1" ;;
  "d1 migrations") echo "No migrations to apply" ;;
  "kv namespace")
    # Each created title gets an id of its own: the first 32 hex digits of its SHA-256.
    case "$3" in
      list)
        printf '['; sep=
        if [ -f "$state/kv" ]; then
          while read -r title; do
            printf '%s{"id":"%s","title":"%s"}' "$sep" "$(printf '%s' "$title" | sha256sum | cut -c1-32)" "$title"; sep=,
          done < "$state/kv"
        fi
        echo ']' ;;
      create) echo "$4" >> "$state/kv" ;;
    esac ;;
  "r2 bucket")
    case "$3" in
      list) echo "Listing buckets..."; if [ -f "$state/r2" ]; then cat "$state/r2"; fi ;;
      create) printf 'name:           %s\ncreation_date:  2026-01-01\n\n' "$4" >> "$state/r2" ;;
    esac ;;
  "vectorize list")
    if [ -f "$state/vectorize" ]; then echo '[{"name":"durable-chat-messages","config":{"dimensions":384,"metric":"cosine"}}]'; else echo '[]'; fi ;;
  "vectorize create") touch "$state/vectorize" ;;
  "pages project")
    # The Pages project (run from pages/, beside its wrangler.toml).
    case "$3" in
      list)
        if [ -f "$state/pages" ]; then echo '[{"Project Name":"durable-chat-pages","Project Domains":"durable-chat-pages.pages.dev"}]'; else echo '[]'; fi ;;
      create) [ -f wrangler.toml ] && touch "$state/pages" ;;
    esac ;;
  "pages deploy") [ -f wrangler.toml ] && [ -d functions ] && echo "Deployment complete" ;;
  "secret list")
    if [ -f "$state/secrets" ]; then cat "$state/secrets"; else echo "Worker not found" >&2; exit 1; fi ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#;

/// A copy of what the deploy reads (wrangler.toml, the Worker's source, the migrations, and the
/// logging Worker's configuration and source) and the fake wrangler.
fn workspace(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("xtask-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("repo");
    copy_dir(&repo_root().join("edge/src"), &root.join("edge/src"));
    copy_dir(&repo_root().join("migrations"), &root.join("migrations"));
    copy_dir(&repo_root().join("logger/src"), &root.join("logger/src"));
    std::fs::copy(
        repo_root().join("logger/wrangler.toml"),
        root.join("logger/wrangler.toml"),
    )
    .expect("copy");
    std::fs::copy(
        repo_root().join("wrangler.toml"),
        root.join("wrangler.toml"),
    )
    .expect("copy");
    copy_dir(&repo_root().join("pages"), &root.join("pages"));
    let bin = dir.join("bin/wrangler");
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    std::fs::write(&bin, FAKE_WRANGLER).expect("fake wrangler");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (root, bin)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn options(bin: &Path) -> Options {
    Options {
        env: "production".into(),
        no_build: true,
        wrangler: Some(bin.to_owned()),
        ..Options::default()
    }
}

fn calls(bin: &Path) -> Vec<String> {
    std::fs::read_to_string(bin.with_file_name("state").join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_first_deploy_creates_every_resource_and_writes_their_ids_and_a_second_creates_nothing() {
    let (root, bin) = workspace("twice");
    std::fs::create_dir_all(bin.with_file_name("state")).expect("state");
    std::fs::write(
        bin.with_file_name("state").join("secrets"),
        r#"[{"name":"SESSION_SECRET","type":"secret_text"}]"#,
    )
    .expect("secrets");

    run(&root, &options(&bin)).expect("first deploy");
    let first = calls(&bin);
    for created in [
        "d1 create durable-chat",
        "kv namespace create durable-chat-logger-logs",
        "r2 bucket create durable-chat-avatars",
        "r2 bucket create durable-chat-attachments",
        "vectorize create durable-chat-messages --dimensions=384 --metric=cosine",
    ] {
        assert!(
            first.iter().any(|c| c == created),
            "{created} in {first:#?}"
        );
    }
    assert!(first
        .iter()
        .any(|c| c.starts_with("d1 migrations apply DB --remote --env production")));
    // The logging Worker goes first: the main Worker's service binding names it.
    let deploys: Vec<&String> = first
        .iter()
        .filter(|c| c.starts_with("deploy --env"))
        .collect();
    assert_eq!(deploys.len(), 2, "{deploys:#?}");
    assert!(deploys[0]
        .starts_with("deploy --env production --config logger/wrangler.toml --message build "));
    assert!(deploys[1].starts_with("deploy --env production --message build "));
    assert!(first.iter().any(|c| c.starts_with("deploy --dry-run")
        && c.ends_with("--env production --config logger/wrangler.toml")));
    let config = std::fs::read_to_string(root.join("wrangler.toml")).expect("wrangler.toml");
    assert!(config.contains("database_id = \"11111111-2222-3333-4444-555555555555\""));
    // The local configuration keeps its placeholder: only production's ids are written.
    assert!(config.contains("database_id = \"00000000-0000-0000-0000-000000000000\""));
    // The logger's namespace id goes into the logger's configuration, and only its production.
    let logger = std::fs::read_to_string(root.join("logger/wrangler.toml")).expect("logger");
    let logs_id = "dadb2947530bea4ff888c05a044aba28"; // sha256("durable-chat-logger-logs")
    assert!(logger.contains(&format!("id = \"{logs_id}\"")), "{logger}");
    assert!(logger.contains("id = \"durable-chat-logs-local\""));
    assert!(!config.contains(logs_id));

    run(&root, &options(&bin)).expect("second deploy");
    let second = &calls(&bin)[first.len()..];
    assert!(
        !second.iter().any(|c| c.contains(" create ")),
        "the second run created {second:#?}"
    );
    let again = std::fs::read_to_string(root.join("wrangler.toml")).expect("wrangler.toml");
    assert_eq!(again, config, "the second run changed wrangler.toml");
    let logger_again = std::fs::read_to_string(root.join("logger/wrangler.toml")).expect("logger");
    assert_eq!(
        logger_again, logger,
        "the second run changed logger/wrangler.toml"
    );
    let _ = std::fs::remove_dir_all(root.parent().expect("dir"));
}

#[test]
fn a_deploy_without_the_session_secret_stops_before_uploading_and_names_it() {
    let (root, bin) = workspace("no-secret");
    // A first deploy: the Worker, and so its secrets, do not exist yet.
    let error = run(&root, &options(&bin)).expect_err("refused");
    assert!(
        error.contains("SESSION_SECRET or HMAC_SECRET_KEY"),
        "{error}"
    );
    assert!(
        error.contains("npx wrangler secret put SESSION_SECRET --env production"),
        "{error}"
    );
    assert!(!calls(&bin).iter().any(|c| c.starts_with("deploy --env")));

    // Given in a secrets file, it is uploaded with the deployment.
    let secrets = root.join("prod.env");
    std::fs::write(
        &secrets,
        "SESSION_SECRET=0123456789abcdef0123456789abcdef\n",
    )
    .expect("file");
    let with_file = Options {
        secrets_file: Some(secrets.clone()),
        ..options(&bin)
    };
    run(&root, &with_file).expect("deploy with a secrets file");
    let last = calls(&bin).pop().unwrap_or_default();
    assert!(
        last.ends_with(&format!("--secrets-file {}", secrets.display())),
        "{last}"
    );
    let _ = std::fs::remove_dir_all(root.parent().expect("dir"));
}

#[test]
fn with_pages_the_project_is_created_once_and_the_app_deployed_from_its_directory_after_the_worker()
{
    let (root, bin) = workspace("pages");
    std::fs::create_dir_all(bin.with_file_name("state")).expect("state");
    std::fs::write(
        bin.with_file_name("state").join("secrets"),
        r#"[{"name":"SESSION_SECRET","type":"secret_text"}]"#,
    )
    .expect("secrets");
    let with_pages = Options {
        pages: true,
        ..options(&bin)
    };

    run(&root, &with_pages).expect("first deploy");
    let first = calls(&bin);
    let worker = first
        .iter()
        .position(|c| c.starts_with("deploy --env production --message"))
        .expect("the Worker deployed");
    let created = first
        .iter()
        .position(|c| c == "pages project create durable-chat-pages --production-branch main")
        .expect("the project created (the fake refuses outside pages/)");
    let deployed = first
        .iter()
        .position(|c| {
            c.starts_with("pages deploy ../dist --project-name durable-chat-pages --branch main")
        })
        .expect("the app deployed from pages/");
    assert!(worker < created && created < deployed, "{first:#?}");

    run(&root, &with_pages).expect("second deploy");
    let second = &calls(&bin)[first.len()..];
    assert!(
        !second.iter().any(|c| c.starts_with("pages project create")),
        "the second run created the project again: {second:#?}"
    );
    assert!(second.iter().any(|c| c.starts_with("pages deploy ../dist")));

    // Without --pages nothing of Pages is touched.
    let before = calls(&bin).len();
    run(&root, &options(&bin)).expect("deploy without pages");
    assert!(!calls(&bin)[before..]
        .iter()
        .any(|c| c.starts_with("pages ")));
    let _ = std::fs::remove_dir_all(root.parent().expect("dir"));
}
