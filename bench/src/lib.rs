//! tag-bench: the home of `tagbench`, the benchmarks of tag-server. Benchmarks live
//! here, never inside the server crate: `tagbench embedded` (the embedded llama.cpp
//! engine's throughput, prefix reuse and memory), `tagbench reorder` (prefix hit
//! rate of the GGR order), `tagbench bench-ops` (operators, naive vs the engine),
//! `tagbench warehouse` (database sources: schema linking, pushdown, start-up),
//! `tagbench estimate` (the cost estimate against what queries spend), `tagbench
//! auth` (access control's cost per request), and
//! the TAG-Bench harness (`tagbench fetch|fixtures|run|report|compare`).

pub mod auth;
pub mod cost_server;
pub mod embedded;
pub mod estimate;
pub mod ops;
pub mod reorder;
pub mod tagbench;
pub mod warehouse;
pub mod wire;
