//! The admin's audit view: every ask and sql request, newest first (`GET
//! /v1/audit`), filtered by who and how it ended, a page at a time.

use leptos::{prelude::*, task::spawn_local};
use tag_types::{AuditEntry, AuditPage};

use crate::{
    api::{self, thousands},
    app::Ctx,
};

const PAGE: u32 = 50;

#[component]
pub fn AuditView() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let entries = RwSignal::new(Vec::<AuditEntry>::new());
    let next_before = RwSignal::new(None::<i64>);
    let principal = RwSignal::new(String::new());
    let outcome = RwSignal::new(String::new());
    let loading = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let load = move |more: bool| {
        let mut query = vec![format!("limit={PAGE}")];
        for (key, value) in [("principal", principal.get_untracked()), ("outcome", outcome.get_untracked())] {
            if !value.trim().is_empty() {
                query.push(format!("{key}={}", api::encode(value.trim())));
            }
        }
        if more {
            if let Some(before) = next_before.get_untracked() {
                query.push(format!("before={before}"));
            }
        }
        loading.set(true);
        spawn_local(async move {
            match api::call::<AuditPage>("GET", &format!("/v1/audit?{}", query.join("&")), None).await {
                Ok(page) => {
                    error.set(None);
                    next_before.set(page.next_before);
                    if more {
                        entries.update(|list| list.extend(page.entries));
                    } else {
                        entries.set(page.entries);
                    }
                }
                Err(e) if e.code == "unauthorized" => ctx.failed("could not read the audit trail", e),
                Err(e) => error.set(Some(e.message)),
            }
            loading.set(false);
        });
    };
    load(false);

    view! {
        <main class="audit">
            <h2>"Audit trail"</h2>
            <form class="audit-filters" on:submit=move |event: leptos::ev::SubmitEvent| { event.prevent_default(); load(false); }>
                <label>"Who "<input id="audit-principal" prop:value=move || principal.get() on:input=move |e| principal.set(event_target_value(&e))/></label>
                <label>"Outcome "<input id="audit-outcome" placeholder="ok, rejected_sql, …" prop:value=move || outcome.get()
                    on:input=move |e| outcome.set(event_target_value(&e))/></label>
                <button type="submit">"Filter"</button>
            </form>
            {move || error.get().map(|message| view! { <div class="error-box" role="alert"><p>{message}</p></div> })}
            <div class="table-scroll">
                <table class="audit-table small">
                    <thead><tr>
                        <th>"When (UTC)"</th><th>"Who"</th><th>"What"</th><th>"Dataset"</th><th>"Question or SQL"</th>
                        <th>"Rows"</th><th>"LLM calls"</th><th>"Tokens"</th><th>"Outcome"</th><th>"ms"</th>
                    </tr></thead>
                    <tbody>
                        {move || entries.get().into_iter().map(|entry| {
                            let text = entry.question.clone().or(entry.sql.clone()).unwrap_or_default();
                            let sql = entry.sql.clone().unwrap_or_default();
                            let who = if entry.principal.is_empty() { "(open)".to_string() } else { entry.principal.clone() };
                            let tokens = thousands(entry.prompt_tokens + entry.completion_tokens);
                            let ok = entry.outcome == "ok";
                            view! {
                                <tr class:failed=!ok>
                                    <td>{when(entry.at)}</td>
                                    <td>{who}</td>
                                    <td>{format!("{} ({})", entry.action, entry.interface)}</td>
                                    <td>{entry.dataset.clone()}</td>
                                    <td class="audit-text" title=sql>{text}</td>
                                    <td>{entry.rows.map(|r| r.to_string()).unwrap_or_default()}</td>
                                    <td>{entry.llm_calls}</td>
                                    <td>{tokens}</td>
                                    <td title=entry.message.clone().unwrap_or_default()>{entry.outcome.clone()}</td>
                                    <td>{entry.duration_ms}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            {move || entries.with(Vec::is_empty).then(|| view! { <p class="muted">{move || if loading.get() { "Loading…" } else { "No requests recorded." }}</p> })}
            {move || next_before.get().map(|_| view! {
                <button on:click=move |_| load(true) disabled=move || loading.get()>"Older"</button>
            })}
        </main>
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn when(at: i64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64 * 1000.0));
    let iso: String = date.to_iso_string().into();
    iso.get(..19).unwrap_or(&iso).replace('T', " ")
}
