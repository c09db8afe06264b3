//! Test support for tag-server: a scripted OpenAI-compatible LLM server that
//! answers by rules over real HTTP on loopback, records every request and
//! misbehaves on demand, a harness that starts the real `tag-server` binary, and a
//! small WebDriver client for the page's browser test.

pub mod harness;
pub mod hostile;
pub mod mariadb;
pub mod model;
pub mod postgres;
pub mod scripted_llm;
pub mod webdriver;
