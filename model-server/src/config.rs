//! Command-line configuration, parsed by hand (a handful of flags does not need a parser crate).

use std::path::PathBuf;

/// The model used when neither `--model` nor `LOCAL_MODEL_PATH` names one: the small GGUF kept
/// beside the repository (`../shared/models/` from the repository root), resolved from this
/// crate's source location so the binary finds it from any working directory.
pub const DEFAULT_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"
);
/// The vision model used when neither `--vision-model` nor `LOCAL_VISION_MODEL_PATH` names one
/// (and only if it exists): the EfficientNet-Lite0 directory beside the repository, resolved like
/// [`DEFAULT_MODEL`], so `./scripts/dev` gets image classification with no extra step.
pub const DEFAULT_VISION_MODEL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/vision");
/// The port the Worker's `AI_BASE_URL` points at in `scripts/dev`.
pub const DEFAULT_PORT: u16 = 8788;
/// Context window in tokens: prompt plus answer.
pub const DEFAULT_CTX: u32 = 2048;
/// Requests that may wait behind the one being answered before new ones get `server_busy`.
pub const DEFAULT_QUEUE: usize = 16;

/// Which vision model to load for `POST /v1/classify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisionModel {
    /// [`DEFAULT_VISION_MODEL`]: loaded when it is there; its absence (or a failure to load it)
    /// leaves the server serving chat, with `/v1/classify` answering `vision_unavailable`.
    Default(PathBuf),
    /// Named by `--vision-model` or `LOCAL_VISION_MODEL_PATH`: the server does not start
    /// without it, as with `--model`.
    Required(PathBuf),
    /// `--no-vision`: chat only.
    Off,
}

/// Environment variables the configuration reads (a flag wins over each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `LOCAL_MODEL_PATH`: the GGUF file.
    pub model: Option<String>,
    /// `LOCAL_VISION_MODEL_PATH`: the vision model's directory or `.safetensors` file.
    pub vision_model: Option<String>,
}

impl Environment {
    /// This process's environment.
    pub fn from_process() -> Environment {
        Environment {
            model: std::env::var("LOCAL_MODEL_PATH").ok(),
            vision_model: std::env::var("LOCAL_VISION_MODEL_PATH").ok(),
        }
    }
}

/// How the server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The GGUF file.
    pub model: PathBuf,
    /// The address to listen on (loopback by default: the server has no authentication).
    pub host: String,
    /// The port (0 picks a free one; the chosen address is printed).
    pub port: u16,
    /// Context window in tokens.
    pub ctx: u32,
    /// llama.cpp threads, at most the number of physical cores.
    pub threads: usize,
    /// Waiting requests allowed before `server_busy` (for each model).
    pub queue: usize,
    /// The image classifier's model.
    pub vision_model: VisionModel,
    /// Threads one image classification runs on (1 by default: see `--vision-threads`).
    pub vision_threads: usize,
    /// Host names requests may address besides the listen address (`Host` header; see
    /// [`crate::access`]).
    pub allowed_hosts: Vec<String>,
    /// The bearer token every request must carry (`--api-key`, or `MODEL_SERVER_API_KEY`).
    pub api_key: Option<String>,
    /// Exit when standard input reaches end of file: a parent (test harness, `scripts/dev`) that
    /// dies without cleaning up takes the server with it, because its end of the pipe closes.
    pub exit_on_stdin_eof: bool,
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve with this configuration.
    Serve(Config),
    /// Print the usage text.
    Help,
}

/// The usage text.
pub const USAGE: &str = "\
model-server: an OpenAI-compatible chat completions server for a local GGUF model (llama.cpp),
and an image classifier (EfficientNet-Lite0)

USAGE: model-server [OPTIONS]

OPTIONS:
  --model PATH        GGUF model file (env LOCAL_MODEL_PATH; default
                      ../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf from the repository root)
  --host ADDR         address to listen on (default 127.0.0.1)
  --port N            port (default 8788; 0 picks a free one)
  --ctx N             context window in tokens, prompt plus answer (default 2048)
  --threads N         llama.cpp threads (default and maximum: the number of physical cores)
  --queue N           requests that may wait for each model before `server_busy` (default 16)
  --vision-model PATH image classifier for POST /v1/classify: a directory with
                      efficientnet-lite0.safetensors and imagenet1k-names.json, or the
                      .safetensors file (env LOCAL_VISION_MODEL_PATH; default
                      ../shared/models/vision/ from the repository root, when it exists;
                      without one, /v1/classify answers vision_unavailable)
  --no-vision         do not load a vision model, even the default
  --vision-threads N  threads one classification uses (default 1: they share the cores with
                      llama.cpp's threads; at most the number of physical cores)
  --allowed-host NAME a host name requests may address besides the listen address and, for
                      loopback, localhost (repeatable; requests naming any other `Host` are
                      refused with 403 host_not_allowed, against DNS rebinding)
  --api-key KEY       require `Authorization: Bearer KEY` on every request (env
                      MODEL_SERVER_API_KEY, which keeps the key out of the process list)
  --exit-on-stdin-eof exit when standard input closes (for parents that start it as a child)
  -h, --help          this text

ENDPOINTS: POST /v1/chat/completions, POST /v1/classify (body: the image, Content-Type
image/*), GET /v1/models, GET /health
";

/// Parses the arguments (without the program name), over what `env` gives; `physical_cores`
/// bounds `--threads` and `--vision-threads`.
pub fn parse_args(
    args: &[String],
    env: &Environment,
    physical_cores: usize,
) -> Result<Command, String> {
    let mut config = Config {
        model: PathBuf::from(
            env.model
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_MODEL.to_string()),
        ),
        host: "127.0.0.1".to_string(),
        port: DEFAULT_PORT,
        ctx: DEFAULT_CTX,
        threads: physical_cores.max(1),
        queue: DEFAULT_QUEUE,
        vision_model: match env.vision_model.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => VisionModel::Required(PathBuf::from(path)),
            None => VisionModel::Default(PathBuf::from(DEFAULT_VISION_MODEL)),
        },
        // One, not one per core: a classification runs while llama.cpp may be generating on
        // every core, and threads beyond the cores slow both (see --threads below).
        vision_threads: 1,
        allowed_hosts: Vec::new(),
        api_key: None,
        exit_on_stdin_eof: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--model" => config.model = PathBuf::from(value()?),
            "--host" => config.host = value()?,
            "--port" => config.port = number(flag, &value()?)?,
            "--ctx" => {
                config.ctx = number(flag, &value()?)?;
                if config.ctx < 64 {
                    return Err("--ctx must be at least 64".into());
                }
            }
            "--threads" => {
                let threads: usize = number(flag, &value()?)?;
                if threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
                // More threads than cores does not just stop helping: llama.cpp's threads spin
                // at barriers after every layer, so two threads sharing a core wait on each
                // other's time slices (4 threads on this 2-core machine ran ~200x slower).
                config.threads = threads.min(physical_cores.max(1));
            }
            "--queue" => config.queue = number(flag, &value()?)?,
            "--vision-model" => {
                let path = value()?;
                if path.is_empty() {
                    return Err("--vision-model needs a path (or use --no-vision)".into());
                }
                config.vision_model = VisionModel::Required(PathBuf::from(path));
            }
            "--no-vision" => config.vision_model = VisionModel::Off,
            "--vision-threads" => {
                let threads: usize = number(flag, &value()?)?;
                if threads == 0 {
                    return Err("--vision-threads must be at least 1".into());
                }
                config.vision_threads = threads.min(physical_cores.max(1));
            }
            "--allowed-host" => config.allowed_hosts.push(value()?),
            "--api-key" => {
                let key = value()?;
                if key.is_empty() {
                    return Err("--api-key must not be empty".into());
                }
                config.api_key = Some(key);
            }
            "--exit-on-stdin-eof" => config.exit_on_stdin_eof = true,
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    Ok(Command::Serve(config))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} expects a number, got '{value}'"))
}

/// The number of physical cores this process may use: distinct (package, core) pairs in
/// `/proc/cpuinfo` (hyper-threads share a core's arithmetic units, which is what llama.cpp's
/// threads compete for), never more than the CPUs the process is allowed to run on.
pub fn physical_cores(cpuinfo: &str, available: usize) -> usize {
    let mut cores = std::collections::BTreeSet::new();
    let mut package = None;
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => package = None,
            "physical id" => package = Some(value.trim().to_string()),
            "core id" => {
                cores.insert((package.clone(), value.trim().to_string()));
            }
            _ => {}
        }
    }
    let available = available.max(1);
    if cores.is_empty() {
        available
    } else {
        cores.len().min(available)
    }
}

/// [`physical_cores`] for this machine.
pub fn detect_physical_cores() -> usize {
    let available = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    physical_cores(&cpuinfo, available)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn env_model(model: Option<&str>) -> Environment {
        Environment {
            model: model.map(String::from),
            vision_model: None,
        }
    }

    fn serve(list: &[&str], env: Option<&str>, cores: usize) -> Config {
        serve_in(list, &env_model(env), cores)
    }

    fn serve_in(list: &[&str], env: &Environment, cores: usize) -> Config {
        match parse_args(&args(list), env, cores) {
            Ok(Command::Serve(config)) => config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_loopback_port_8788_a_2048_context_and_one_thread_per_core() {
        let config = serve(&[], None, 2);
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.port, 8788);
        assert_eq!(config.ctx, 2048);
        assert_eq!(config.threads, 2);
        assert!(config
            .model
            .ends_with("shared/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(!config.exit_on_stdin_eof);
        assert!(config.allowed_hosts.is_empty());
        assert_eq!(config.api_key, None);
    }

    #[test]
    fn allowed_hosts_repeat_and_an_api_key_is_taken_but_never_empty() {
        let config = serve(
            &[
                "--allowed-host",
                "a.lan",
                "--allowed-host=b.lan",
                "--api-key",
                "k",
            ],
            None,
            2,
        );
        assert_eq!(
            config.allowed_hosts,
            vec!["a.lan".to_string(), "b.lan".into()]
        );
        assert_eq!(config.api_key.as_deref(), Some("k"));
        assert!(parse_args(&args(&["--api-key="]), &Environment::default(), 2).is_err());
    }

    #[test]
    fn the_model_comes_from_the_flag_then_the_environment_then_the_default() {
        assert_eq!(
            serve(&[], Some("/m/env.gguf"), 2).model,
            PathBuf::from("/m/env.gguf")
        );
        assert_eq!(
            serve(&["--model", "/m/flag.gguf"], Some("/m/env.gguf"), 2).model,
            PathBuf::from("/m/flag.gguf")
        );
        assert!(serve(&[], Some(""), 2)
            .model
            .ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let config = serve(
            &[
                "--port=9000",
                "--host",
                "0.0.0.0",
                "--ctx",
                "512",
                "--queue=3",
                "--exit-on-stdin-eof",
            ],
            None,
            4,
        );
        assert_eq!(config.port, 9000);
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.ctx, 512);
        assert_eq!(config.queue, 3);
        assert!(config.exit_on_stdin_eof);
    }

    #[test]
    fn the_vision_model_defaults_to_the_shared_directory_and_is_optional_there() {
        let config = serve(&[], None, 2);
        assert_eq!(
            config.vision_model,
            VisionModel::Default(PathBuf::from(DEFAULT_VISION_MODEL))
        );
        assert!(DEFAULT_VISION_MODEL.ends_with("shared/models/vision"));
        assert_eq!(config.vision_threads, 1);
    }

    #[test]
    fn a_vision_model_named_by_flag_or_environment_is_required_and_no_vision_turns_it_off() {
        let env = Environment {
            model: None,
            vision_model: Some("/v/env".into()),
        };
        assert_eq!(
            serve_in(&[], &env, 2).vision_model,
            VisionModel::Required("/v/env".into())
        );
        assert_eq!(
            serve_in(&["--vision-model", "/v/flag"], &env, 2).vision_model,
            VisionModel::Required("/v/flag".into())
        );
        assert_eq!(
            serve_in(&["--no-vision"], &env, 2).vision_model,
            VisionModel::Off
        );
        let empty = Environment {
            model: None,
            vision_model: Some(String::new()),
        };
        assert!(matches!(
            serve_in(&[], &empty, 2).vision_model,
            VisionModel::Default(_)
        ));
    }

    #[test]
    fn vision_threads_are_never_more_than_the_physical_cores() {
        assert_eq!(serve(&["--vision-threads", "2"], None, 2).vision_threads, 2);
        assert_eq!(serve(&["--vision-threads=8"], None, 2).vision_threads, 2);
    }

    #[test]
    fn threads_are_never_more_than_the_physical_cores() {
        assert_eq!(serve(&["--threads", "4"], None, 2).threads, 2);
        assert_eq!(serve(&["--threads", "1"], None, 2).threads, 1);
    }

    #[test]
    fn bad_values_and_unknown_flags_are_errors_not_defaults() {
        for bad in [
            &["--port", "eighty"][..],
            &["--port", "70000"],
            &["--threads", "0"],
            &["--ctx", "10"],
            &["--model"],
            &["--verbose"],
            &["--vision-threads", "0"],
            &["--vision-model="],
            &["--vision-model"],
        ] {
            assert!(
                parse_args(&args(bad), &Environment::default(), 2).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn help_is_a_command() {
        assert_eq!(
            parse_args(&args(&["-h"]), &Environment::default(), 2),
            Ok(Command::Help)
        );
    }

    #[test]
    fn hyper_threads_count_once_per_physical_core() {
        // Two cores with two hardware threads each.
        let cpuinfo = "processor: 0\nphysical id: 0\ncore id: 0\n\n\
                       processor: 1\nphysical id: 0\ncore id: 1\n\n\
                       processor: 2\nphysical id: 0\ncore id: 0\n\n\
                       processor: 3\nphysical id: 0\ncore id: 1\n";
        assert_eq!(physical_cores(cpuinfo, 4), 2);
        // Two packages whose core ids repeat are four cores.
        let two_packages = "processor: 0\nphysical id: 0\ncore id: 0\n\
                            processor: 1\nphysical id: 1\ncore id: 0\n\
                            processor: 2\nphysical id: 0\ncore id: 1\n\
                            processor: 3\nphysical id: 1\ncore id: 1\n";
        assert_eq!(physical_cores(two_packages, 8), 4);
    }

    #[test]
    fn the_cpus_this_process_may_use_bound_the_core_count() {
        let cpuinfo = "processor: 0\ncore id: 0\nprocessor: 1\ncore id: 1\n\
                       processor: 2\ncore id: 2\nprocessor: 3\ncore id: 3\n";
        assert_eq!(physical_cores(cpuinfo, 2), 2);
    }

    #[test]
    fn without_core_ids_the_available_cpus_are_used() {
        assert_eq!(physical_cores("processor: 0\nprocessor: 1\n", 2), 2);
        assert_eq!(physical_cores("", 0), 1);
    }
}
