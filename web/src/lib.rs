//! tag-web: the chat page served by tag-server at `/`. It is built for
//! `wasm32-unknown-unknown` by Trunk from the top-level `Trunk.toml`, outside the
//! main workspace. It holds no code yet; the chat-page issue adds the Leptos app.
