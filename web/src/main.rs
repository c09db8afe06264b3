//! tag-web: the chat page served by tag-server at `/`. A Leptos client-side app
//! built for `wasm32-unknown-unknown` by Trunk from the top-level `Trunk.toml`,
//! outside the main workspace. It talks to the server only through its HTTP API.

mod answer;
mod api;
mod app;
mod audit;
mod render;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
