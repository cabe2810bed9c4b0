//! `cargo run -p xtask -- deploy [--dry-run] [--no-build] [--pages]`,
//! `cargo run -p xtask -- notices [--check]`, `cargo run -p xtask -- precache DIST` and
//! `cargo run -p xtask -- first-download DIST`; see the library's docs.

use std::process::ExitCode;

use xtask::{deploy, download, notices, precache, repo_root};

const USAGE: &str = "usage:
  xtask deploy [--dry-run] [--no-build] [--pages] [--env NAME] [--secrets-file FILE]
      Creates what production lacks, checks its secrets, builds and deploys (README \"Deploy\").
      --dry-run   only what needs no account, offline: the bindings check, the build, wrangler's
                  own dry-run bundle and its size budget, and every resource and secret a
                  deploy would create or need
      --no-build  use the current build (edge/build, dist)
      --pages     also deploy the Pages project in pages/ (README \"Cloudflare Pages\"),
                  creating it when the account lacks it
      --env NAME  the wrangler environment (production)
      --secrets-file FILE
                  secrets to upload with the deployment (JSON or .env, like `wrangler secret
                  bulk`); they count as set, so a dry run names exactly the missing ones
  xtask notices [--check]
      Writes the crate licenses into THIRD_PARTY_NOTICES.md; --check only compares, and fails
      when it is out of date or a shipped crate's license is not on the allowlist.
  xtask precache DIST
      Writes the service worker's precache manifest (every file of the built app with a hash
      of its bytes) into DIST/sw.js; scripts/build-app runs it after Trunk.
  xtask first-download DIST
      Lists a new visitor's first download (the page, its styles, the loader and the welcome
      bundle) and the chat bundle, gzipped, and fails when either is over its budget
      (scripts/test).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("deploy") => deploy_command(&args[1..]),
        Some("notices") => notices_command(&args[1..]),
        Some("precache") => match &args[1..] {
            [dist] => precache::write(std::path::Path::new(dist))
                .map(|n| println!("{dist}/sw.js: precache manifest of {n} files")),
            _ => Err(USAGE.to_owned()),
        },
        Some("first-download") => match &args[1..] {
            [dist] => download::check(
                std::path::Path::new(dist),
                download::FIRST_DOWNLOAD_GZIP_BUDGET,
                download::CHAT_BUNDLE_GZIP_BUDGET,
            )
            .map(|report| println!("{report}")),
            _ => Err(USAGE.to_owned()),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\x1b[31merror:\x1b[0m {e}");
            ExitCode::FAILURE
        }
    }
}

fn deploy_command(args: &[String]) -> Result<(), String> {
    let mut options = deploy::Options {
        env: "production".into(),
        ..Default::default()
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dry-run" => options.dry_run = true,
            "--no-build" => options.no_build = true,
            "--pages" => options.pages = true,
            "--env" => options.env = args.next().ok_or(USAGE)?.clone(),
            "--secrets-file" => options.secrets_file = Some(args.next().ok_or(USAGE)?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    deploy::run(&repo_root(), &options)
}

fn notices_command(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => return Err(USAGE.to_owned()),
    };
    let root = repo_root();
    let crates = notices::shipped_crates(&root)?;
    let bad = notices::disallowed(&crates);
    if !bad.is_empty() {
        let list: Vec<String> = bad
            .iter()
            .map(|c| format!("{} {} ({})", c.name, c.version, c.license))
            .collect();
        return Err(format!(
            "shipped crates without an allowed license: {}",
            list.join(", ")
        ));
    }
    let path = root.join("THIRD_PARTY_NOTICES.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let updated = notices::update(&text, &crates)
        .ok_or("THIRD_PARTY_NOTICES.md lacks the generated section's markers")?;
    if updated == text {
        println!(
            "THIRD_PARTY_NOTICES.md is up to date ({} crates, all allowed)",
            crates.len()
        );
    } else if check {
        return Err("THIRD_PARTY_NOTICES.md is out of date: run ./scripts/notices".into());
    } else {
        std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "THIRD_PARTY_NOTICES.md updated ({} crates, all allowed)",
            crates.len()
        );
    }
    Ok(())
}
