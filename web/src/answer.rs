//! One turn of the thread: the question, the live stage, the answer (Markdown,
//! rendered safely), and its evidence: the SQL (highlighted, copy, edit and run),
//! the result table (sortable, paginated, CSV), a chart drawn from the data, the
//! statistics, and thumbs up/down feedback. A query over the server's confirmation
//! threshold shows its estimate with Run and Cancel instead.

use leptos::{prelude::*, task::spawn_local};
use serde_json::{json, Value};
use tag_types::{AskStats, SqlResponse};
use wasm_bindgen::JsCast;

use crate::{
    api::{self, ApiError, Confirmation, TableData},
    app::{Ctx, Turn},
    render::{self, ChartKind, ChartSpec},
};

#[component]
pub fn TurnView(turn: Turn) -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    view! {
        <article class="turn">
            <div class="question"><p>{turn.question.get_value()}</p></div>
            <div class="reply">
                {move || turn.stage.get().map(|stage| view! {
                    <div class="stage" role="status"><span class="spinner" aria-hidden="true"></span>{stage}</div>
                })}
                {move || turn.error.get().map(|error| view! {
                    <div class="error-box" role="alert">
                        <strong>{error_title(&error)}</strong>
                        <p>{error.message.clone()}</p>
                        <button on:click=move |_| ctx.retry(turn) disabled=move || ctx.running.get()>"Retry"</button>
                    </div>
                })}
                {move || turn.confirm.get().map(|confirmation| {
                    confirm_box(confirmation, move || ctx.confirm(turn), move || ctx.cancel(turn))
                })}
                <div class="answer markdown" inner_html=move || render::markdown(&turn.answer.get())></div>
                {move || turn.sql.get().is_some().then(|| view! { <SqlPanel turn/> })}
                {move || turn.table.get().map(|table| view! { <ResultView table/> })}
                {move || match (turn.table.with(Option::is_none), turn.stored_rows.get()) {
                    (true, Some(rows)) => Some(view! { <p class="muted small">{format!("{rows} rows; run the SQL to see them again.")}</p> }),
                    _ => None,
                }}
                {move || turn.stats.get().map(|stats| view! { <StatsView stats/> })}
                {move || turn.turn_id.get().map(|id| view! { <FeedbackView turn turn_id=id/> })}
            </div>
        </article>
    }
}

/// "About N LLM calls, about M tokens — run?" with Run and Cancel.
fn confirm_box(confirmation: Confirmation, run: impl Fn() + Copy + 'static, cancel: impl Fn() + Copy + 'static) -> impl IntoView {
    let heading = if confirmation.changed { "The estimate changed" } else { "This query calls the LLM many times" };
    view! {
        <div class="confirm-box" role="alertdialog" aria-label="Confirm the query's cost">
            <strong>{heading}</strong>
            <p class="estimate">{format!("{} — run?", capitalized(&confirmation.text()))}</p>
            <div class="actions">
                <button class="primary confirm-run" on:click=move |_| run()>"Run"</button>
                <button class="confirm-cancel" on:click=move |_| cancel()>"Cancel"</button>
            </div>
        </div>
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn error_title(error: &ApiError) -> &'static str {
    match error.code.as_str() {
        // The server's codes (api/error.rs), and the page's own for Stop and network failures.
        "stopped" | "cancelled" => "Stopped",
        "sql_error" | "rejected_sql" => "The SQL failed",
        "llm_error" | "llm_not_configured" | "unreachable" => "The LLM or the server could not be reached",
        "timeout" => "Timed out",
        "not_found" => "Not found",
        "rate_limited" => "Over the budget",
        "too_costly" => "Too costly to run",
        "forbidden" => "Not allowed",
        _ => "Something went wrong",
    }
}

#[component]
fn SqlPanel(turn: Turn) -> impl IntoView {
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(String::new());
    let running = RwSignal::new(false);
    let run_error = RwSignal::new(None::<ApiError>);
    let copied = RwSignal::new(false);
    let sql = move || turn.sql.get().unwrap_or_default();

    let copy = move |_| {
        if let Some(window) = web_sys::window() {
            let _ = window.navigator().clipboard().write_text(&sql());
            copied.set(true);
        }
    };
    let edit = move |_| {
        draft.set(sql());
        editing.set(true);
    };
    let confirm = RwSignal::new(None::<Confirmation>);
    let run_sql = move |estimate_id: Option<String>| {
        let text = if editing.get_untracked() { draft.get_untracked() } else { sql() };
        running.set(true);
        run_error.set(None);
        confirm.set(None);
        spawn_local(async move {
            let mut body = json!({"sql": text, "dataset": turn.dataset.get_value()});
            if let Some(id) = estimate_id {
                body["confirm"] = json!(true);
                body["estimate_id"] = json!(id);
            }
            match api::call::<SqlResponse>("POST", "/v1/sql", Some(body)).await {
                Ok(result) => {
                    turn.table.set(Some(result.table));
                    turn.sql.set(Some(text));
                    editing.set(false);
                }
                Err(error) if error.confirmation().is_some() => confirm.set(error.confirmation()),
                Err(error) => run_error.set(Some(error)),
            }
            running.set(false);
        });
    };
    let run = move |_| run_sql(None);
    view! {
        <details class="sql-panel" open>
            <summary>"SQL"</summary>
            {move || if editing.get() {
                view! {
                    <textarea class="sql-editor" aria-label="Edit the SQL" rows="6" prop:value=move || draft.get()
                        on:input=move |event| draft.set(event_target_value(&event))></textarea>
                }.into_any()
            } else {
                view! { <pre class="sql"><code inner_html=move || render::highlight_sql(&sql())></code></pre> }.into_any()
            }}
            <div class="actions">
                <button on:click=copy>{move || if copied.get() { "Copied" } else { "Copy" }}</button>
                {move || if editing.get() {
                    view! { <button on:click=move |_| editing.set(false)>"Cancel"</button> }.into_any()
                } else {
                    view! { <button on:click=edit>"Edit"</button> }.into_any()
                }}
                <button class="primary" on:click=run disabled=move || running.get()>{move || if running.get() { "Running…" } else { "Run" }}</button>
            </div>
            {move || run_error.get().map(|error| view! {
                <div class="error-box" role="alert"><strong>{error_title(&error)}</strong><p>{error.message}</p></div>
            })}
            {move || confirm.get().map(|confirmation| {
                let id = confirmation.estimate_id.clone();
                let id = StoredValue::new(id);
                confirm_box(confirmation, move || run_sql(Some(id.get_value())), move || confirm.set(None))
            })}
        </details>
    }
}

const PAGE_SIZE: usize = 10;

#[component]
fn ResultView(table: TableData) -> impl IntoView {
    let sort = RwSignal::new(None::<(usize, bool)>);
    let page = RwSignal::new(0usize);
    let shown = table.rows.len();
    let pages = shown.div_ceil(PAGE_SIZE).max(1);
    let columns = table.columns.clone();
    let chart = render::chart_spec(&table);
    let table = StoredValue::new(table);
    let sorted_rows = Memo::new(move |_| {
        let mut rows = table.with_value(|t| t.rows.clone());
        if let Some((column, ascending)) = sort.get() {
            render::sort_rows(&mut rows, column, ascending);
        }
        rows
    });
    let (row_count, truncated) = table.with_value(|t| (t.row_count, t.truncated));
    let download = move |_| table.with_value(|t| download_csv(&render::csv(t)));

    view! {
        <section class="result">
            {chart.map(|spec| view! { <Chart spec/> })}
            <div class="table-scroll">
                <table class="data">
                    <thead><tr>
                        {columns.into_iter().enumerate().map(|(index, column)| {
                            let state = move || match sort.get() {
                                Some((c, true)) if c == index => "ascending",
                                Some((c, false)) if c == index => "descending",
                                _ => "none",
                            };
                            let arrow = move || match state() { "ascending" => " ▲", "descending" => " ▼", _ => "" };
                            view! {
                                <th aria-sort=state>
                                    <button class="sort" title=column.data_type.clone() on:click=move |_| {
                                        sort.update(|s| *s = match *s { Some((c, true)) if c == index => Some((index, false)), _ => Some((index, true)) });
                                        page.set(0);
                                    }>{column.name.clone()}{arrow}</button>
                                </th>
                            }
                        }).collect_view()}
                    </tr></thead>
                    <tbody>
                        {move || sorted_rows.with(|rows| rows.iter().skip(page.get() * PAGE_SIZE).take(PAGE_SIZE).map(|row| view! {
                            <tr>{row.iter().map(|cell| {
                                let numeric = cell.is_number();
                                view! { <td class:num=numeric>{render::cell_text(cell)}</td> }
                            }).collect_view()}</tr>
                        }).collect_view())}
                    </tbody>
                </table>
            </div>
            <div class="table-footer">
                <span class="row-count">{move || {
                    let first = if shown == 0 { 0 } else { page.get() * PAGE_SIZE + 1 };
                    let last = (page.get() * PAGE_SIZE + PAGE_SIZE).min(shown);
                    format!("Rows {first}–{last} of {row_count}")
                }}</span>
                {(pages > 1).then(|| view! {
                    <button aria-label="Previous page" disabled=move || page.get() == 0 on:click=move |_| page.update(|p| *p = p.saturating_sub(1))>"‹"</button>
                    <span class="small">{move || format!("page {} of {pages}", page.get() + 1)}</span>
                    <button aria-label="Next page" disabled=move || { page.get() + 1 >= pages } on:click=move |_| page.update(|p| *p += 1)>"›"</button>
                })}
                <button on:click=download>"Download CSV"</button>
            </div>
            {truncated.then(|| view! {
                <p class="notice">{format!("Truncated: the query returned {row_count} rows; the first {shown} are shown.")}</p>
            })}
        </section>
    }
}

fn download_csv(csv: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    let parts = js_sys::Array::of1(&csv.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("text/csv;charset=utf-8");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    if let Ok(link) = document.create_element("a") {
        if let Ok(link) = link.dyn_into::<web_sys::HtmlAnchorElement>() {
            link.set_href(&url);
            link.set_download("result.csv");
            link.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

const CHART_WIDTH: f64 = 640.0;
const CHART_HEIGHT: f64 = 220.0;
const MARGIN_LEFT: f64 = 56.0;
const MARGIN_BOTTOM: f64 = 48.0;

/// A bar or line chart of the data, drawn as SVG by the page (no generated code).
#[component]
fn Chart(spec: ChartSpec) -> impl IntoView {
    let max = spec.points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let min = spec.points.iter().map(|p| p.1).fold(0.0_f64, f64::min);
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let plot_w = CHART_WIDTH - MARGIN_LEFT - 8.0;
    let plot_h = CHART_HEIGHT - MARGIN_BOTTOM - 8.0;
    let y = move |v: f64| 8.0 + plot_h * (max - v) / span;
    let n = spec.points.len() as f64;
    let step = plot_w / n;
    let label_every = (spec.points.len() / 12).max(1);
    let title = format!("{} by {}", spec.value_column, spec.label_column);
    let marks = match spec.kind {
        ChartKind::Bar => spec
            .points
            .iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let (top, bottom) = (y(value.max(0.0)), y(value.min(0.0)));
                view! {
                    <rect class="bar" x=MARGIN_LEFT + i as f64 * step + step * 0.1 y=top width=step * 0.8 height=(bottom - top).max(1.0)>
                        <title>{format!("{label}: {value}")}</title>
                    </rect>
                }
            })
            .collect_view()
            .into_any(),
        ChartKind::Line => {
            let points: Vec<String> =
                spec.points.iter().enumerate().map(|(i, (_, v))| format!("{:.1},{:.1}", MARGIN_LEFT + (i as f64 + 0.5) * step, y(*v))).collect();
            view! { <polyline class="line" fill="none" points=points.join(" ")></polyline> }.into_any()
        }
    };
    let labels = spec
        .points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % label_every == 0)
        .map(|(i, (label, _))| {
            let short: String = if label.chars().count() > 14 { label.chars().take(13).chain(['…']).collect() } else { label.clone() };
            view! { <text class="axis" x=MARGIN_LEFT + (i as f64 + 0.5) * step y=CHART_HEIGHT - MARGIN_BOTTOM + 16.0 text-anchor="middle">{short}</text> }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}") role="img" aria-label=title.clone()>
                <line class="axis-line" x1=MARGIN_LEFT y1=y(0.0) x2=CHART_WIDTH - 8.0 y2=y(0.0)></line>
                <text class="axis" x=MARGIN_LEFT - 6.0 y=y(max) + 4.0 text-anchor="end">{format_number(max)}</text>
                <text class="axis" x=MARGIN_LEFT - 6.0 y=y(min) + 4.0 text-anchor="end">{format_number(min)}</text>
                {marks}
                {labels}
            </svg>
            <figcaption class="small muted">{title}</figcaption>
        </figure>
    }
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[component]
fn StatsView(stats: AskStats) -> impl IntoView {
    let execution = &stats.execution;
    let mut rows = vec![
        ("Time", format!(
            "SQL {} ms · query {} ms · answer {} ms · total {} ms",
            stats.synthesis_ms, stats.execution_ms, stats.generation_ms, stats.total_ms
        )),
        ("LLM calls", format!("{} (operators {})", stats.llm.calls, execution.llm_calls)),
        ("Tokens", format!(
            "{} prompt · {} completion · {} cached",
            stats.llm.usage.prompt_tokens, stats.llm.usage.completion_tokens, stats.llm.usage.cached_prompt_tokens
        )),
        ("Operators", format!(
            "{} rows · {} distinct prompts · {} cache hits · {} reused in the query",
            execution.operator_rows, execution.distinct_prompts, execution.cache_hits, execution.memo_hits
        )),
    ];
    if let Some(estimate) = &execution.estimate {
        rows.push(("Estimate", format!("{} LLM calls · {} tokens, worked out before the query ran", estimate.llm_calls, estimate.tokens)));
    }
    if let Some(left) = stats.budget_remaining {
        rows.push(("Budget", format!("{} LLM tokens left today", api::thousands(left))));
    }
    view! {
        <details class="stats">
            <summary>{format!("Statistics · {} ms · {} LLM calls", stats.total_ms, stats.llm.calls)}</summary>
            <dl>{rows.into_iter().map(|(name, value)| view! { <dt>{name}</dt><dd>{value}</dd> }).collect_view()}</dl>
        </details>
    }
}

#[component]
fn FeedbackView(turn: Turn, turn_id: i64) -> impl IntoView {
    let comment = RwSignal::new(String::new());
    let commenting = RwSignal::new(false);
    let status = RwSignal::new(None::<String>);
    let send = move |rating: String, comment: Option<String>| {
        spawn_local(async move {
            let body = json!({"turn_id": turn_id, "rating": rating, "comment": comment});
            match api::call::<Value>("POST", "/v1/feedback", Some(body)).await {
                Ok(_) => {
                    turn.feedback.set(Some(rating));
                    status.set(Some(if comment.is_some() { "Thanks, comment saved." } else { "Thanks!" }.into()));
                }
                Err(error) => status.set(Some(format!("Could not save the feedback: {}", error.message))),
            }
        });
    };
    let rate = move |rating: &'static str| {
        move |_| {
            commenting.set(true);
            send(rating.to_string(), None);
        }
    };
    let pressed = move |rating: &'static str| move || (turn.feedback.get().as_deref() == Some(rating)).to_string();
    view! {
        <div class="feedback">
            <button class="icon thumb" aria-label="Good answer" aria-pressed=pressed("up") on:click=rate("up")><ThumbIcon down=false/></button>
            <button class="icon thumb" aria-label="Bad answer" aria-pressed=pressed("down") on:click=rate("down")><ThumbIcon down=true/></button>
            {move || turn.sql.get().is_some().then(|| view! {
                <button class="link save-example" on:click=move |_| save_example(turn, turn_id, status)>"Save as example"</button>
            })}
            {move || status.get().map(|s| view! { <span class="small muted feedback-status">{s}</span> })}
            {move || commenting.get().then(|| view! {
                <form class="comment" on:submit=move |event: leptos::ev::SubmitEvent| {
                    event.prevent_default();
                    if let Some(rating) = turn.feedback.get_untracked() {
                        send(rating, Some(comment.get_untracked()));
                        commenting.set(false);
                    }
                }>
                    <input type="text" aria-label="Comment on this answer (optional)" placeholder="What was right or wrong? (optional)"
                        prop:value=move || comment.get() on:input=move |event| comment.set(event_target_value(&event))/>
                    <button type="submit">"Send comment"</button>
                </form>
            })}
        </div>
    }
}

/// Saves the turn's question and SQL as a verified example of its dataset; an
/// admin's is used at once, another token's waits for an admin's approval.
fn save_example(turn: Turn, turn_id: i64, status: RwSignal<Option<String>>) {
    spawn_local(async move {
        let path = format!("/v1/datasets/{}/examples", api::encode(&turn.dataset.get_value()));
        match api::call::<Value>("POST", &path, Some(json!({ "turn_id": turn_id }))).await {
            Ok(saved) if saved["status"] == "approved" => {
                status.set(Some("Saved as an example: questions like this one will be shown this SQL.".into()))
            }
            Ok(_) => status.set(Some("Saved as an example; it is used once an admin approves it.".into())),
            Err(error) => status.set(Some(format!("Could not save the example: {}", error.message))),
        }
    });
}

/// A thumb drawn as SVG (emoji fonts are missing on many Linux desktops).
#[component]
fn ThumbIcon(down: bool) -> impl IntoView {
    view! {
        <svg class="thumb-icon" class:down=down viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
            <path d="M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L13.2 1 7.6 6.6C7.2 7 7 7.5 7 8v11c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z"/>
        </svg>
    }
}
