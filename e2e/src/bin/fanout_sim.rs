//! One room past one Durable Object, simulated: `cargo run --release -p e2e --bin fanout_sim`.
//!
//! Drives the real room core (`shared::room::Room` on SQLite, natively) with tens of thousands
//! of virtual clients through `e2e::fanout`, then charges what it emitted to one object holding
//! every socket and to fan-out trees, and prints markdown tables (the ones in
//! `docs/scaling.md`). Every client must apply every event exactly once and in order, through
//! node restarts and a room restart, or the run fails.
//!
//! Flags (defaults in brackets):
//! - `--clients 20000,50000` room sizes; `--fanout 16,64,256` tree sizes (nodes per room);
//! - `--messages 400` steady-phase messages at `--rate 10` per second of simulated time, each
//!   after a typing notice, with a reaction every 10 and a read every 25; `--gap 40` messages
//!   while a node is down; `--sample 400` clients that run the real `ClientRoom`; `--seed 7`;
//! - the cost model, in workerd: `--send-us 30` (one WebSocket send: the burst bench's
//!   marginal server CPU per frame, uncoalesced against coalesced, 18–43 µs across 18 runs on
//!   2026-11-30); an inbound frame costs `--frame-us 150`, plus `--write-us 300` if it writes,
//!   plus `--native-factor 3` times the room core's native time measured here (so a message
//!   costs about 500 µs, as 2,147 acknowledged sends/s and an ack p50 of 0.58 ms in README
//!   imply; the split between the three is an assumption); `--byte-ns 1`; `--recv-us 60` and
//!   `--hop-us 1000` (a node taking a message from the room, and the hop: not measured here);
//!   `--envelope 24` (routing header bytes).

use anyhow::{bail, Context};
use e2e::fanout::{measure_native, Config, Crowd, Model, Phase, Resume, Topology};
use e2e::Result;
use std::time::Duration;

struct Args {
    clients: Vec<usize>,
    base: Config,
    model: Model,
}

fn list(value: &str) -> Result<Vec<usize>> {
    value
        .split(',')
        .map(|v| {
            v.trim()
                .replace('_', "")
                .parse()
                .context("a list of numbers")
        })
        .collect()
}

fn parse() -> Result<Args> {
    let mut args = Args {
        clients: vec![20_000, 50_000],
        base: Config::new(0),
        model: Model {
            send_us: 30.0,
            byte_ns: 1.0,
            frame_us: 150.0,
            write_us: 300.0,
            native_factor: 3.0,
            recv_us: 60.0,
            hop_us: 1_000.0,
            envelope_bytes: 24.0,
            serialize_ns_per_byte: 0.0,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--clients" => args.clients = list(&value)?,
            "--fanout" => args.base.fanouts = list(&value)?,
            "--messages" => args.base.messages = number()? as usize,
            "--rate" => args.base.rate = number()?,
            "--gap" => args.base.gap = number()? as usize,
            "--sample" => args.base.sample = number()? as usize,
            "--seed" => args.base.seed = number()? as u64,
            "--send-us" => args.model.send_us = number()?,
            "--byte-ns" => args.model.byte_ns = number()?,
            "--frame-us" => args.model.frame_us = number()?,
            "--write-us" => args.model.write_us = number()?,
            "--native-factor" => args.model.native_factor = number()?,
            "--recv-us" => args.model.recv_us = number()?,
            "--hop-us" => args.model.hop_us = number()?,
            "--envelope" => args.model.envelope_bytes = number()?,
            other => bail!("unknown flag {other} (see the top of e2e/src/bin/fanout_sim.rs)"),
        }
    }
    Ok(args)
}

fn ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0}", us / 1_000.0)
    } else {
        format!("{:.1}", us / 1_000.0)
    }
}

fn rate(per_s: f64) -> String {
    if per_s >= 100.0 {
        format!("{per_s:.0}")
    } else {
        format!("{per_s:.1}")
    }
}

fn percentile(mut values: Vec<Duration>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort();
    let i = ((values.len() as f64 * q) as usize).min(values.len() - 1);
    values[i].as_secs_f64() * 1e6
}

fn native_us(crowd: &Crowd, phase: impl Fn(Phase) -> bool, kind: &str) -> (f64, f64, usize) {
    let times: Vec<Duration> = crowd
        .inbound
        .iter()
        .filter(|i| phase(i.phase) && i.kind == kind)
        .map(|i| i.native)
        .collect();
    let n = times.len();
    (percentile(times.clone(), 0.5), percentile(times, 0.99), n)
}

fn main() -> Result {
    let args = parse()?;
    let mut runs = Vec::new();
    for &clients in &args.clients {
        let config = Config {
            clients,
            ..args.base.clone()
        };
        eprintln!("simulating {clients} clients ...");
        let crowd = Crowd::run(config)?;
        eprintln!(
            "  done in {:.1} s: {} events applied, checks held",
            crowd.elapsed.as_secs_f64(),
            crowd.checks.applied
        );
        runs.push(crowd);
    }
    let first = runs.first().context("no room size given")?;
    let event = first.sample_event()?;
    let native = measure_native(&event, first.config.clients)?;
    let mut model = args.model;
    model.serialize_ns_per_byte = native.serialize_ns_per_byte;

    println!("### Cost model\n");
    println!(
        "WebSocket send {} µs + {} ns/byte; an inbound frame costs the room {} µs, plus {} µs if \
         it writes, plus {}× the room core's native time here (a message: {:.0} µs in all); a \
         node takes a message from the room in {} µs; hop {} µs; envelope {} bytes; \
         serializing {:.2} ns/byte (measured here).\n",
        model.send_us,
        model.byte_ns,
        model.frame_us,
        model.write_us,
        model.native_factor,
        first.send_cost(&model),
        model.recv_us,
        model.hop_us,
        model.envelope_bytes,
        model.serialize_ns_per_byte
    );

    println!("### Measured natively (this machine, room core on SQLite in memory)\n");
    println!("| what | p50 | p99 | samples |\n| --- | --- | --- | --- |");
    for crowd in &runs {
        let n = crowd.config.clients;
        let rows = [
            (
                "a send (stored, acked, broadcast)",
                native_us(crowd, |p| p == Phase::Steady, "send"),
            ),
            (
                "a typing notice",
                native_us(crowd, |p| p == Phase::Steady, "typing"),
            ),
            (
                "a first hello (welcome + page)",
                native_us(crowd, |p| p == Phase::Join, "hello"),
            ),
            (
                "a resume hello (welcome + replay)",
                native_us(crowd, |p| matches!(p, Phase::Resume(_)), "hello"),
            ),
            (
                "a hello after the room restarted",
                native_us(crowd, |p| p == Phase::RoomRestart, "hello"),
            ),
        ];
        for (what, (p50, p99, count)) in rows {
            println!("| N = {n}: {what} | {p50:.0} µs | {p99:.0} µs | {count} |");
        }
    }
    println!(
        "| serializing an event frame ({} bytes) | {:.1} µs | | |",
        native.event_bytes,
        native.serialize_ns_per_byte * native.event_bytes as f64 / 1_000.0
    );
    println!(
        "| the outbox queueing it for one batching socket (median of 11 rounds) | {:.0} ns | | {} sockets |\n",
        native.offer_ns, first.config.clients
    );

    println!("### One room, one object or a tree\n");
    println!(
        "One message to everyone (the steady phase's largest broadcast), and the steady phase \
         (each message after a typing notice, a reaction every 10, a read every 25, presence \
         counts; {} messages at {} per second, with the node restarts below) charged to each \
         object. Nodes work in parallel; the ceiling is the busiest object at 100% CPU.\n",
        args.base.messages, args.base.rate
    );
    println!(
        "| N | topology | frame | one message: p50 / last socket (ms) | extra hop (ms) | room CPU per message (ms) | busiest node CPU per message (ms) | broadcast ceiling (messages/s) | room out at ceiling (MB/s) | coalesced ceiling (messages/s) | steady phase: busiest object CPU | steady-phase ceiling (messages/s) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for crowd in &runs {
        let n = crowd.config.clients;
        let mut topologies = vec![Topology::Single];
        topologies.extend(crowd.config.fanouts.iter().map(|&k| Topology::Tree { k }));
        for topology in topologies {
            let Some(one) = crowd.one_message(&model, topology) else {
                continue;
            };
            let hop = match topology {
                Topology::Single => 0.0,
                Topology::Tree { .. } => model.hop_us + model.recv_us,
            };
            // Coalesced: each socket gets one frame per window whatever the rate, so a message
            // costs the queueing and its bytes per socket, not a send; a window still costs a
            // send per socket, so the latency floor is the one-message time.
            let per_socket = native.offer_ns / 1_000.0 + one.bytes as f64 * model.byte_ns / 1_000.0;
            let send_cost = crowd.send_cost(&model);
            let coalesced = match topology {
                Topology::Single => send_cost + one.recipients as f64 * per_socket,
                Topology::Tree { k } => (send_cost + k as f64 * per_socket)
                    .max(model.recv_us + (one.recipients as f64 / k as f64) * per_socket),
            };
            let steady = crowd.busy(&model, topology, |p| p == Phase::Steady);
            let busiest = steady.bottleneck_us();
            let seconds = crowd.steady_seconds();
            let messages = crowd.steady_messages() as f64;
            let over = match topology {
                Topology::Single if n > 32_768 => " (over the 32,768 sockets one object may hold)",
                _ => "",
            };
            println!(
                "| {n} | {topology}{over} | {} B | {} / {} | {} | {} | {} | {} | {:.1} | {} | {:.0}% | {} |",
                one.bytes,
                ms(one.p50_us),
                ms(one.max_us),
                ms(hop),
                ms(one.root_us),
                if one.busiest_node_us > 0.0 { ms(one.busiest_node_us) } else { "–".into() },
                rate(one.ceiling()),
                one.ceiling() * one.root_bytes / 1e6,
                rate(1e6 / coalesced),
                100.0 * busiest / (seconds * 1e6),
                rate(messages / (busiest / 1e6)),
            );
        }
    }

    println!("\n### A fan-out node restarts mid-stream\n");
    println!(
        "Its clients drop, {} messages (with their typing, reactions and reads) go by, and they \
         come back at once with their cursors. \"Room\": each hello reaches the room, which \
         replays to each. \"Node buffer\": the restarted node fetches the missed events from the \
         room once, each hello reaches the room with the node's head (a welcome and an empty \
         replay), and the node replays each client's share from its buffer. Modeled CPU is for \
         the whole resume.\n",
        args.base.gap
    );
    println!(
        "| N | K | resume | clients | events missed | hellos at the room | room frames / MB | node frames from its buffer / MB | room core, native (ms) | modeled room CPU (ms) | modeled node CPU (ms) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for crowd in &runs {
        for (e, episode) in crowd.episodes.iter().enumerate() {
            let k = crowd.config.fanouts[episode.fanout];
            let phase = Phase::Resume(e);
            let busy = crowd.busy(&model, Topology::Tree { k }, |p| p == phase);
            let from_buffer = crowd
                .log
                .iter()
                .filter(|s| s.phase == phase && s.from_node)
                .fold((0u64, 0f64), |(n, b), s| (n + 1, b + s.bytes as f64));
            let hellos = crowd
                .inbound
                .iter()
                .filter(|i| i.phase == phase && i.kind == "hello")
                .count();
            println!(
                "| {} | {k} | {} | {} | {} | {hellos} | {} / {:.2} | {} / {:.2} | {:.0} | {} | {} |",
                crowd.config.clients,
                match episode.resume {
                    Resume::Room => "room",
                    Resume::NodeBuffer => "node buffer",
                },
                episode.clients.len(),
                episode.missed,
                busy.root_frames,
                busy.root_bytes / 1e6,
                from_buffer.0,
                from_buffer.1 / 1e6,
                busy.native.as_secs_f64() * 1e3,
                ms(busy.root_us),
                ms(busy.busiest_node_us()),
            );
        }
    }

    println!("\n### The room restarts; everyone arrives\n");
    println!(
        "One object: every socket drops and every client resumes with its cursor at once. Tree: \
         the nodes keep their sockets; each re-links with its cursor (one empty replay) and sends \
         its roster, from which the room rebuilds presence. A join storm (everyone arriving, \
         one a millisecond) for comparison: each hello still reaches the room in both \
         topologies.\n"
    );
    println!(
        "| N | one object: hellos / frames / MB | room core, native (s) | modeled room CPU (s) | tree: re-links, roster MB | presence rebuild, native (ms) | join storm: modeled room CPU (s), one object / tree K = {} |",
        first.config.fanouts.last().copied().unwrap_or(0)
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for crowd in &runs {
        let single = crowd.busy(&model, Topology::Single, |p| p == Phase::RoomRestart);
        let join_single = crowd.busy(&model, Topology::Single, |p| p == Phase::Join);
        let k = crowd.config.fanouts.last().copied().unwrap_or(1);
        let join_tree = crowd.busy(&model, Topology::Tree { k }, |p| p == Phase::Join);
        println!(
            "| {} | {} / {} / {:.1} | {:.2} | {:.1} | {} per fan-out size, {:.1} | {:.0} | {:.1} / {:.1} |",
            crowd.config.clients,
            single.inbound,
            single.root_frames,
            single.root_bytes / 1e6,
            single.native.as_secs_f64(),
            single.root_us / 1e6,
            crowd
                .config
                .fanouts
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            crowd.restart.roster_bytes as f64 / 1e6,
            crowd.restart.presence_rebuild.as_secs_f64() * 1e3,
            join_single.root_us / 1e6,
            join_tree.root_us / 1e6,
        );
    }

    println!("\n### Checks\n");
    for crowd in &runs {
        println!(
            "- N = {}: {} events applied across all clients ({} with the real `ClientRoom`), 0 \
             duplicates, 0 gaps, 0 resyncs, every client at the room's head ({}); simulated in \
             {:.1} s.",
            crowd.config.clients,
            crowd.checks.applied,
            crowd.sampled(),
            crowd.head,
            crowd.elapsed.as_secs_f64()
        );
    }
    Ok(())
}
