//! `model-server`: see `--help` and the crate documentation.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use model_server::access::Access;
use model_server::config::{
    detect_physical_cores, parse_args, Command, Config, Environment, VisionModel, USAGE,
};
use model_server::engine::{Engine, EngineConfig};
use model_server::http::{Services, Vision};
use model_server::vision::Classifier;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args, &Environment::from_process(), detect_physical_cores()) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Serve(mut config)) => {
            // The environment keeps the key out of `ps`; a flag wins over it.
            if config.api_key.is_none() {
                config.api_key = std::env::var("MODEL_SERVER_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty());
            }
            run(config)
        }
        Err(message) => {
            eprintln!("model-server: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> ExitCode {
    if config.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    // First, because it takes milliseconds: a misnamed --vision-model fails before the GGUF loads.
    let vision = match load_vision(&config) {
        Ok(vision) => vision,
        Err(message) => {
            eprintln!("model-server: {message}");
            return ExitCode::from(1);
        }
    };
    let engine = match Engine::load(&EngineConfig {
        model: config.model.clone(),
        ctx: config.ctx,
        threads: config.threads,
        queue: config.queue,
    }) {
        Ok(engine) => Arc::new(engine),
        Err(message) => {
            eprintln!("model-server: {message}");
            if !config.model.exists() {
                eprintln!(
                    "model-server: run ./scripts/fetch-model to download the default model, \
                     or pass --model PATH (or set LOCAL_MODEL_PATH)"
                );
            }
            return ExitCode::from(1);
        }
    };
    // One thread for HTTP is plenty (the work is parsing JSON and copying tokens); the cores
    // belong to llama.cpp.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("model-server: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("model-server: cannot listen on {}:{}: {e}", config.host, config.port);
                return ExitCode::from(1);
            }
        };
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| format!("{}:{}", config.host, config.port));
        let threads = engine.threads();
        eprintln!(
            "[model-server] {} ready on http://{address}/v1 (context {} tokens, {threads} thread{}, {} chat template)",
            engine.id(),
            engine.n_ctx(),
            if threads == 1 { "" } else { "s" },
            engine.template_source()
        );
        let access = Arc::new(Access::new(
            &config.host,
            &config.allowed_hosts,
            config.api_key.clone(),
        ));
        let services = Arc::new(Services {
            chat: engine,
            vision,
        });
        match model_server::http::serve(listener, services, access).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("model-server: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Loads the vision model the configuration names. Fails only when one named by flag or
/// environment cannot be loaded: the default is optional, and chat is served without it.
fn load_vision(config: &Config) -> Result<Option<Vision>, String> {
    let (path, required) = match &config.vision_model {
        VisionModel::Off => return Ok(None),
        VisionModel::Default(path) if !path.exists() => {
            eprintln!(
                "[model-server] no vision model at {}: POST /v1/classify answers \
                 vision_unavailable",
                path.display()
            );
            return Ok(None);
        }
        VisionModel::Default(path) => (path, false),
        VisionModel::Required(path) => (path, true),
    };
    let loading = Instant::now();
    match Classifier::load(path, config.vision_threads) {
        Ok(classifier) => {
            let threads = classifier.threads();
            eprintln!(
                "[model-server] vision ready: {} ({} classes, {threads} thread{}, loaded in {} ms)",
                classifier.id(),
                classifier.classes(),
                if threads == 1 { "" } else { "s" },
                loading.elapsed().as_millis()
            );
            Ok(Some(Vision::new(classifier, config.queue)))
        }
        Err(e) if required => Err(e.to_string()),
        Err(e) => {
            eprintln!("[model-server] {e}: POST /v1/classify answers vision_unavailable");
            Ok(None)
        }
    }
}
