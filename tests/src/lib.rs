//! Test support for tag-server: a scripted OpenAI-compatible LLM server that
//! answers by rules over real HTTP on loopback, records every request and
//! misbehaves on demand, and a harness that starts the real `tag-server` binary.

pub mod harness;
pub mod model;
pub mod scripted_llm;
