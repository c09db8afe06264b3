//! tag-bench: the home of `tagbench`, the benchmarks of tag-server. Benchmarks live
//! here, never inside the server crate: `tagbench embedded` (the embedded llama.cpp
//! engine's throughput, prefix reuse and memory), `tagbench reorder` (prefix hit
//! rate of the GGR order), `tagbench bench-ops` (operators, naive vs the engine),
//! `tagbench warehouse` (database sources: schema linking, pushdown, start-up),
//! `tagbench estimate` (the cost estimate against what queries spend), `tagbench
//! auth` (access control's cost per request), `tagbench wire` (the wire protocol
//! against Arrow), `tagbench quality` (execution accuracy of the SQL written for
//! the demo datasets' question set, step by step), and
//! the TAG-Bench harness (`tagbench fetch|fixtures|run|report|compare`).

pub mod auth;
pub mod cost_server;
pub mod embedded;
pub mod estimate;
pub mod ops;
pub mod quality;
pub mod reorder;
pub mod tagbench;
pub mod warehouse;
pub mod wire;

/// The median of `values` (the upper one of an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}
