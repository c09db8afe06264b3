//! tag-bench: the home of `tagbench`, the TAG-Bench harness, and of the operator
//! and prefix-sharing benchmarks. It holds no code yet; the benchmark issues add
//! the harness here so that benchmarks never live inside the server crate.
