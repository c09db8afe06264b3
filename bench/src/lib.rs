//! tag-bench: the home of `tagbench`, the benchmarks of tag-server. Benchmarks live
//! here, never inside the server crate. So far: `tagbench embedded` (the embedded
//! llama.cpp engine's throughput, prefix reuse and memory) and `tagbench reorder`
//! (prefix hit rate of the GGR order). The TAG-Bench harness and
//! the operator benchmarks are separate issues.

pub mod cost_server;
pub mod embedded;
pub mod ops;
pub mod reorder;
