//! Real agency folders for the simulation, made once per test with the CLI's own code:
//! `init` (CA, node certificate, signing key, node.toml), `trust export|add` between every
//! pair of agencies, and `peer add` for the links of the topology.

use passerelle::cli::federate::{self, ConfigArg, PeerAddArgs};
use passerelle::cli::init::{self, InitArgs};
use passerelle_model::{AgencyId, Kind};
use passerelle_node::NodeConfig;
use tempfile::TempDir;

/// The three agencies of every topology, in node index order.
pub const AGENCIES: [&str; 3] = ["be.vdab", "tg.anpe", "fr.francetravail"];

/// How the nodes pull from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every node pulls from every other; `relay` forwards third-party records too.
    Mesh { relay: bool },
    /// be.vdab ↔ fr.francetravail ↔ tg.anpe: the middle node relays, and shares only
    /// vacancies and shortages with tg.anpe, so tg.anpe never holds other agencies' supply.
    Chain,
    /// A relaying mesh in which be.vdab shares only its vacancies with tg.anpe directly:
    /// tg.anpe gets be.vdab's shortages and supply through fr.francetravail.
    NarrowedMesh,
}

/// One `[[peers]]` entry in `node`'s node.toml: `node` pulls from `peer`, and `relay` and
/// `share` are `node`'s outbound policy for `peer`.
struct Edge {
    node: usize,
    peer: usize,
    relay: bool,
    share: Vec<Kind>,
}

/// The agency folders of one topology; removed when dropped.
pub struct Federation {
    _dir: TempDir,
    pub shape: Shape,
    pub configs: Vec<NodeConfig>,
}

impl Federation {
    pub fn build(shape: Shape) -> Federation {
        let dir = tempfile::tempdir().expect("tempdir");
        let inits: Vec<_> = AGENCIES
            .iter()
            .map(|a| {
                init::run(&InitArgs {
                    agency: a.parse().expect("agency id"),
                    dir: dir.path().join(a),
                    listen: "127.0.0.1:7443".parse().expect("addr"),
                    hostname: Vec::new(),
                    metrics_listen: "127.0.0.1:0".parse().expect("addr"),
                    days: 30,
                })
                .expect("init")
            })
            .collect();
        // every agency trusts every other: a relayed record is verified against its origin
        for (i, me) in inits.iter().enumerate() {
            for (j, other) in inits.iter().enumerate() {
                if i == j {
                    continue;
                }
                let entry = dir.path().join(format!("trust-{i}-{j}.toml"));
                std::fs::write(&entry, federate::export(&other.config).expect("export"))
                    .expect("write trust entry");
                federate::add(&me.config, &entry, false).expect("trust add");
            }
        }
        let all = Kind::ALL.to_vec();
        let mut edges = Vec::new();
        match shape {
            Shape::Mesh { .. } | Shape::NarrowedMesh => {
                let relay = shape != Shape::Mesh { relay: false };
                for node in 0..3 {
                    for peer in 0..3 {
                        if node != peer {
                            let narrowed = shape == Shape::NarrowedMesh && (node, peer) == (0, 1);
                            edges.push(Edge {
                                node,
                                peer,
                                relay,
                                share: if narrowed {
                                    vec![Kind::Vacancy]
                                } else {
                                    all.clone()
                                },
                            });
                        }
                    }
                }
            }
            Shape::Chain => {
                let (vdab, anpe, ft) = (0, 1, 2);
                let e = |node, peer, relay, share: &[Kind]| Edge {
                    node,
                    peer,
                    relay,
                    share: share.to_vec(),
                };
                edges.push(e(vdab, ft, false, &all));
                edges.push(e(anpe, ft, false, &all));
                edges.push(e(ft, vdab, true, &all));
                edges.push(e(ft, anpe, true, &[Kind::Vacancy, Kind::Shortage]));
            }
        }
        for e in &edges {
            federate::peer_add(&PeerAddArgs {
                config: ConfigArg {
                    config: inits[e.node].config.clone(),
                },
                agency: AGENCIES[e.peer].parse().expect("agency id"),
                // never dialled: the simulation carries the batches itself
                endpoint: Some("https://127.0.0.1:1".to_owned()),
                share: e.share.clone(),
                relay: e.relay,
                international: None,
                country: Vec::new(),
            })
            .expect("peer add");
        }
        let configs = inits
            .iter()
            .map(|i| NodeConfig::load(&i.config).expect("node.toml"))
            .collect();
        Federation {
            _dir: dir,
            shape,
            configs,
        }
    }

    pub fn agency(&self, i: usize) -> AgencyId {
        self.configs[i].agency.clone()
    }
}
