//! The cost model: what the frames [`Crowd`] logged cost each object, in workerd, under one
//! object or a tree of fan-out nodes ([`Topology`]).

use super::*;

/// What the room does to the workerd isolate(s), in microseconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// One WebSocket `send` of a small frame (the object's CPU), µs.
    pub send_us: f64,
    /// Each byte of a sent frame beyond that, ns.
    pub byte_ns: f64,
    /// The room's fixed cost per inbound frame in workerd (the handler's dispatch, the socket's
    /// attachment, the frame's bytes into the wasm module), µs.
    pub frame_us: f64,
    /// What a frame that writes to storage adds (the commit the object waits for), µs.
    pub write_us: f64,
    /// The room core's own work: its native time here times this (wasm in workerd is slower).
    pub native_factor: f64,
    /// A fan-out node's work to take one message from the room (the handler's dispatch), µs.
    pub recv_us: f64,
    /// One room → node hop (network and scheduling), µs.
    pub hop_us: f64,
    /// The routing header the room adds to a frame it sends a node, bytes.
    pub envelope_bytes: f64,
    /// Serializing a frame, ns per byte (measured natively, [`measure_native`]).
    pub serialize_ns_per_byte: f64,
}

impl Model {
    fn send(&self, bytes: f64) -> f64 {
        self.send_us + bytes * self.byte_ns / 1_000.0
    }

    fn serialize(&self, bytes: f64) -> f64 {
        bytes * self.serialize_ns_per_byte / 1_000.0
    }
}

/// Whether a frame writes to the room's storage: a message, a reaction, a read position, a
/// first join (the member's record). A hello that resumes writes nothing when nothing changed
/// (ARCHITECTURE.md, "What a join costs"); a typing notice never writes.
fn writes(phase: Phase, kind: &str) -> bool {
    matches!(kind, "send" | "react" | "read") || (kind == "hello" && phase == Phase::Join)
}

/// Where the room's sockets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One object holds every socket.
    Single,
    /// The room feeds `k` fan-out nodes that hold the sockets.
    Tree {
        /// Nodes.
        k: usize,
    },
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::Single => write!(f, "one object"),
            Topology::Tree { k } => write!(f, "tree, K = {k}"),
        }
    }
}

impl Crowd {
    fn node_of_inbound(&self, inbound: &Inbound, fanout: usize) -> Option<usize> {
        match (inbound.client, inbound.node) {
            (Some(c), _) => Some(self.clients[c as usize].nodes[fanout] as usize),
            (None, Some((f, node))) if f == fanout => Some(node as usize),
            _ => None,
        }
    }

    /// What the frames of the phases `which` selects cost each object under `topology`.
    pub fn busy(&self, model: &Model, topology: Topology, which: impl Fn(Phase) -> bool) -> Busy {
        let fanout = match topology {
            Topology::Single => None,
            Topology::Tree { k } => self.config.fanouts.iter().position(|&f| f == k),
        };
        let k = match topology {
            Topology::Single => 1,
            Topology::Tree { k } => k,
        };
        let mut busy = Busy {
            nodes_us: vec![0.0; k],
            ..Busy::default()
        };
        let costs = self.inbound_cost(model);
        for inbound in self.inbound.iter().filter(|i| which(i.phase)) {
            busy.root_us += costs
                .get(&(inbound.phase, inbound.kind))
                .copied()
                .unwrap_or(model.frame_us + model.write_us);
            busy.inbound += 1;
            busy.native += inbound.native;
            if let Some(f) = fanout {
                // The node takes the client's frame and passes it on to the room.
                if let (Some(node), Some(_)) = (self.node_of_inbound(inbound, f), inbound.client) {
                    busy.nodes_us[node] +=
                        model.recv_us + model.send(inbound.bytes as f64 + model.envelope_bytes);
                }
            }
        }
        for sent in self.log.iter().filter(|s| which(s.phase)) {
            let bytes = sent.bytes as f64;
            match fanout {
                None => {
                    busy.root_us +=
                        model.serialize(bytes) + sent.recipients as f64 * model.send(bytes);
                    busy.root_frames += sent.recipients as u64;
                    busy.root_bytes += sent.recipients as f64 * bytes;
                }
                Some(f) => {
                    let link = bytes + model.envelope_bytes;
                    for &(node, n) in &sent.nodes[f] {
                        let node_us = &mut busy.nodes_us[node as usize];
                        if !sent.from_node {
                            *node_us += model.recv_us + link * model.byte_ns / 1_000.0;
                            busy.root_us += model.send(link);
                            busy.root_frames += 1;
                            busy.root_bytes += link;
                        }
                        *node_us += n as f64 * model.send(bytes);
                        busy.node_frames += n as u64;
                        busy.node_bytes += n as f64 * bytes;
                    }
                    if !sent.from_node && !sent.nodes[f].is_empty() {
                        busy.root_us += model.serialize(bytes);
                    }
                }
            }
        }
        busy
    }

    /// What the room spends in workerd on one inbound frame of each phase and kind, µs:
    /// [`Model::frame_us`], plus [`Model::write_us`] if it writes to storage (a message, a
    /// reaction, a read position, a first join), plus the kind's median native time here times
    /// [`Model::native_factor`].
    pub fn inbound_cost(&self, model: &Model) -> HashMap<(Phase, &'static str), f64> {
        let mut times: HashMap<(Phase, &'static str), Vec<Duration>> = HashMap::new();
        for inbound in &self.inbound {
            times
                .entry((inbound.phase, inbound.kind))
                .or_default()
                .push(inbound.native);
        }
        times
            .into_iter()
            .map(|((phase, kind), mut values)| {
                values.sort();
                let native_us = values[values.len() / 2].as_secs_f64() * 1e6;
                (
                    (phase, kind),
                    model.frame_us
                        + if writes(phase, kind) {
                            model.write_us
                        } else {
                            0.0
                        }
                        + native_us * model.native_factor,
                )
            })
            .collect()
    }

    /// What a message costs the room in workerd before it sends anything, µs.
    pub fn send_cost(&self, model: &Model) -> f64 {
        self.inbound_cost(model)
            .get(&(Phase::Steady, "send"))
            .copied()
            .unwrap_or(model.frame_us + model.write_us)
    }

    /// The steady phase's largest broadcast of a message: the frame everyone gets.
    fn broadcast(&self) -> Option<&Sent> {
        self.log
            .iter()
            .filter(|s| s.phase == Phase::Steady && s.kind == ServerType::Event)
            .max_by_key(|s| s.recipients)
    }

    /// One message, from the room taking the sender's frame to each socket's `send`, for every
    /// socket: the nodes work in parallel, each starting when the room's send to it lands.
    pub fn one_message(&self, model: &Model, topology: Topology) -> Option<Delivery> {
        let sent = self.broadcast()?;
        let bytes = sent.bytes as f64;
        let start = self.send_cost(model) + model.serialize(bytes);
        let mut times = Vec::with_capacity(sent.recipients as usize);
        let (root_us, node_us, root_bytes) = match topology {
            Topology::Single => {
                for i in 0..sent.recipients {
                    times.push(start + (i + 1) as f64 * model.send(bytes));
                }
                let root = start + sent.recipients as f64 * model.send(bytes);
                (root, 0.0, sent.recipients as f64 * bytes)
            }
            Topology::Tree { k } => {
                let f = self.config.fanouts.iter().position(|&x| x == k)?;
                let link = bytes + model.envelope_bytes;
                let mut busiest: f64 = 0.0;
                for (j, &(_, n)) in sent.nodes[f].iter().enumerate() {
                    let arrives = start
                        + (j + 1) as f64 * model.send(link)
                        + model.hop_us
                        + model.recv_us
                        + link * model.byte_ns / 1_000.0;
                    for i in 0..n {
                        times.push(arrives + (i + 1) as f64 * model.send(bytes));
                    }
                    busiest = busiest.max(model.recv_us + n as f64 * model.send(bytes));
                }
                let nodes = sent.nodes[f].len() as f64;
                (start + nodes * model.send(link), busiest, nodes * link)
            }
        };
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        Some(Delivery {
            recipients: sent.recipients,
            bytes: sent.bytes,
            p50_us: at(0.5),
            max_us: *times.last()?,
            root_us,
            busiest_node_us: node_us,
            root_bytes,
        })
    }
}

/// What a set of frames costs each object.
#[derive(Debug, Clone, Default)]
pub struct Busy {
    /// The room's CPU, µs.
    pub root_us: f64,
    /// Each fan-out node's CPU, µs (one entry, unused, for one object).
    pub nodes_us: Vec<f64>,
    /// Frames the room sent (to sockets, or to nodes).
    pub root_frames: u64,
    /// Bytes the room sent.
    pub root_bytes: f64,
    /// Frames the nodes sent to sockets.
    pub node_frames: u64,
    /// Bytes the nodes sent to sockets.
    pub node_bytes: f64,
    /// Frames the room handled.
    pub inbound: u64,
    /// The room core's native time for them.
    pub native: Duration,
}

impl Busy {
    /// The busiest node's CPU, µs.
    pub fn busiest_node_us(&self) -> f64 {
        self.nodes_us.iter().copied().fold(0.0, f64::max)
    }

    /// The busiest object's CPU, µs.
    pub fn bottleneck_us(&self) -> f64 {
        self.root_us.max(self.busiest_node_us())
    }
}

/// One message to everyone.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Sockets it reached.
    pub recipients: u32,
    /// Its frame's length.
    pub bytes: u32,
    /// Half the sockets had it by then, µs after the room took the sender's frame.
    pub p50_us: f64,
    /// The last socket, µs.
    pub max_us: f64,
    /// The room's CPU for it, µs.
    pub root_us: f64,
    /// The busiest node's CPU for it, µs.
    pub busiest_node_us: f64,
    /// Bytes the room sent for it.
    pub root_bytes: f64,
}

impl Delivery {
    /// Broadcast messages a second before the busiest object is saturated.
    pub fn ceiling(&self) -> f64 {
        1e6 / self.root_us.max(self.busiest_node_us)
    }
}

/// Natively measured here: what the room core and its helpers cost on this machine.
#[derive(Debug, Clone)]
pub struct Native {
    /// Serializing an event frame, ns per byte.
    pub serialize_ns_per_byte: f64,
    /// The event frame measured, bytes.
    pub event_bytes: usize,
    /// Offering a frame to one batching socket's queue while a window is open, ns.
    pub offer_ns: f64,
}

/// Measures serialization of a real event frame and the outbox's per-socket offer.
pub fn measure_native(event: &ServerMessage, sockets: usize) -> Result<Native> {
    let text = serde_json::to_string(event)?;
    let rounds = 20_000;
    let started = Instant::now();
    let mut total = 0usize;
    for _ in 0..rounds {
        total += serde_json::to_string(std::hint::black_box(event))?.len();
    }
    let serialize_ns_per_byte = started.elapsed().as_nanos() as f64 / total as f64;

    let message: Rc<str> = Rc::from(text.as_str());
    let mut outbox: Outbox<u64> = Outbox::new();
    let sockets = sockets.max(1) as u64;
    let mut rounds: Vec<f64> = Vec::new();
    for _ in 0..11 {
        // The first offer opens the window; the rest queue.
        let _ = outbox.offer(&0, true, &message);
        outbox.take_opened();
        let started = Instant::now();
        for socket in 0..sockets {
            std::hint::black_box(outbox.offer(&socket, true, &message));
        }
        rounds.push(started.elapsed().as_nanos() as f64 / sockets as f64);
        std::hint::black_box(outbox.flush());
        // A flush that finds nothing closes the window.
        outbox.flush();
    }
    rounds.sort_by(f64::total_cmp);
    Ok(Native {
        serialize_ns_per_byte,
        event_bytes: text.len(),
        offer_ns: rounds[rounds.len() / 2],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_takes_the_sends_off_the_room_and_adds_a_hop() {
        let mut config = Config::new(400);
        config.fanouts = vec![4];
        config.messages = 40;
        config.gap = 5;
        config.sample = 4;
        let crowd = Crowd::run(config).expect("runs");
        let model = Model {
            send_us: 30.0,
            byte_ns: 1.0,
            frame_us: 150.0,
            write_us: 300.0,
            native_factor: 3.0,
            recv_us: 60.0,
            hop_us: 1_000.0,
            envelope_bytes: 24.0,
            serialize_ns_per_byte: 5.0,
        };
        let single = crowd
            .one_message(&model, Topology::Single)
            .expect("a broadcast");
        let tree = crowd
            .one_message(&model, Topology::Tree { k: 4 })
            .expect("a broadcast");
        assert_eq!(single.recipients, 400);
        // One object: 400 sends in a row; the tree: 4 sends, a hop, then ~100 per node.
        assert!(single.max_us > 400.0 * 30.0);
        assert!(tree.max_us < single.max_us && tree.max_us > model.hop_us);
        // The room: its own work and 400 sends, or its own work and 4.
        let own = crowd.send_cost(&model);
        assert!(tree.root_us - own < (single.root_us - own) / 50.0);
        let steady = |p| p == Phase::Steady;
        let one = crowd.busy(&model, Topology::Single, steady);
        let four = crowd.busy(&model, Topology::Tree { k: 4 }, steady);
        assert_eq!(one.root_frames, four.node_frames);
        assert!(four.root_frames * 50 < one.root_frames);
    }
}
