//! The page: a dataset side panel (tables, columns, samples, examples, saved
//! conversations), the chat thread, and the composer. Asking streams `/v1/ask`
//! events into the turn being answered; Stop aborts the request, which stops the
//! work on the server. A query over the confirmation threshold waits in its turn
//! for Run or Cancel. When the server requires tokens, the page asks for one
//! first, shows who is signed in, and signs out; an admin also has the audit view.

use std::cell::RefCell;

use leptos::{ev, prelude::*, task::spawn_local};
use serde_json::{json, Value};
use tag_types::{AskStats, Event, Me, Preparing, Progress, Readiness, Stage};
use web_sys::AbortController;

use crate::{
    answer::TurnView,
    api::{self, ApiError, Confirmation, Conversation, ConversationDetail, DatasetDetail, DatasetSummary, TableData},
    audit::AuditView,
};

/// What the page shows: the sign-in form, the chat, or (admins) the audit trail.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Loading,
    SignIn,
    Chat,
    Audit,
}

/// Everything the components share; all fields are signals, so it is `Copy`.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub datasets: RwSignal<Vec<DatasetSummary>>,
    pub dataset: RwSignal<String>,
    pub detail: RwSignal<Option<DatasetDetail>>,
    pub conversations: RwSignal<Vec<Conversation>>,
    pub conversation: RwSignal<Option<String>>,
    pub turns: RwSignal<Vec<Turn>>,
    pub running: RwSignal<bool>,
    pub draft: RwSignal<String>,
    pub last_question: RwSignal<String>,
    pub page_error: RwSignal<Option<String>>,
    pub panel_open: RwSignal<bool>,
    pub model: RwSignal<String>,
    /// The server answers with its tiny default model, and this browser has not
    /// been told yet.
    pub tiny_model: RwSignal<bool>,
    pub screen: RwSignal<Screen>,
    /// Who the token is (or, with access control off, the open principal).
    pub me: RwSignal<Option<Me>>,
    pub sign_in_error: RwSignal<Option<String>>,
    next_key: RwSignal<u64>,
}

/// One question in the thread and everything known about its answer so far.
#[derive(Clone, Copy)]
pub struct Turn {
    pub key: u64,
    pub question: StoredValue<String>,
    pub dataset: StoredValue<String>,
    /// What is happening now; `None` once the turn is finished.
    pub stage: RwSignal<Option<String>>,
    pub answer: RwSignal<String>,
    pub sql: RwSignal<Option<String>>,
    pub table: RwSignal<Option<TableData>>,
    /// Rows the stored turn had, when the table itself is not loaded.
    pub stored_rows: RwSignal<Option<u64>>,
    pub stats: RwSignal<Option<AskStats>>,
    pub error: RwSignal<Option<ApiError>>,
    pub turn_id: RwSignal<Option<i64>>,
    pub feedback: RwSignal<Option<String>>,
    /// The estimate the server wants confirmed before it runs the query.
    pub confirm: RwSignal<Option<Confirmation>>,
}

impl Turn {
    fn new(key: u64, question: String, dataset: String) -> Turn {
        Turn {
            key,
            question: StoredValue::new(question),
            dataset: StoredValue::new(dataset),
            stage: RwSignal::new(None),
            answer: RwSignal::new(String::new()),
            sql: RwSignal::new(None),
            table: RwSignal::new(None),
            stored_rows: RwSignal::new(None),
            stats: RwSignal::new(None),
            error: RwSignal::new(None),
            turn_id: RwSignal::new(None),
            feedback: RwSignal::new(None),
            confirm: RwSignal::new(None),
        }
    }

    fn reset(&self) {
        self.answer.set(String::new());
        self.sql.set(None);
        self.table.set(None);
        self.stats.set(None);
        self.error.set(None);
        self.turn_id.set(None);
        self.confirm.set(None);
    }
}

thread_local! {
    /// The request of the question being answered, so Stop can abort it.
    static RUNNING: RefCell<Option<AbortController>> = const { RefCell::new(None) };
}

impl Ctx {
    fn next_key(&self) -> u64 {
        let key = self.next_key.get_untracked();
        self.next_key.set(key + 1);
        key
    }

    /// Finds out whether a token is needed and whose it is, then loads the page's
    /// data, or shows the sign-in form.
    pub fn start(self) {
        spawn_local(async move {
            if let Ok(health) = api::call::<Value>("GET", "/healthz", None).await {
                let model = &health["llm"]["model"];
                self.model.set(model.as_str().map(|m| format!("model: {m}")).unwrap_or_else(|| "no LLM configured".into()));
                if health["llm"]["default_model"].as_bool() == Some(true) && !api::tiny_model_notice_seen() {
                    self.tiny_model.set(true);
                    api::set_tiny_model_notice_seen();
                }
            }
            match api::call::<Me>("GET", "/v1/me", None).await {
                Ok(me) => {
                    self.me.set(Some(me));
                    self.screen.set(Screen::Chat);
                    self.load();
                }
                Err(e) if e.code == "unauthorized" => {
                    if api::token().is_some() {
                        self.sign_in_error.set(Some(e.message));
                    }
                    api::set_token(None);
                    self.screen.set(Screen::SignIn);
                }
                Err(e) => {
                    self.screen.set(Screen::Chat);
                    self.page_error.set(Some(format!("could not reach the server: {}", e.message)));
                }
            }
        });
    }

    fn load(self) {
        spawn_local(async move {
            match api::call::<Vec<DatasetSummary>>("GET", "/v1/datasets", None).await {
                Ok(datasets) => {
                    if let Some(first) = datasets.iter().find(|d| d.available) {
                        self.dataset.set(first.name.clone());
                        self.load_detail(first.name.clone());
                    }
                    self.datasets.set(datasets);
                }
                Err(e) => self.failed("could not list the datasets", e),
            }
        });
        self.refresh_conversations();
    }

    pub fn sign_in(self, token: String) {
        let token = token.trim().to_string();
        if token.is_empty() {
            return;
        }
        api::set_token(Some(&token));
        self.sign_in_error.set(None);
        self.start();
    }

    /// Forgets the token and everything loaded with it.
    pub fn sign_out(self) {
        self.stop();
        api::set_token(None);
        self.me.set(None);
        self.datasets.set(Vec::new());
        self.dataset.set(String::new());
        self.detail.set(None);
        self.conversations.set(Vec::new());
        self.conversation.set(None);
        self.turns.set(Vec::new());
        self.page_error.set(None);
        self.sign_in_error.set(None);
        self.screen.set(Screen::SignIn);
    }

    /// Shows an error; a token that stopped working (revoked, expired) signs out.
    pub fn failed(self, what: &str, error: ApiError) {
        if error.code == "unauthorized" {
            self.sign_out();
            self.sign_in_error.set(Some(format!("{what}: {}", error.message)));
        } else {
            self.page_error.set(Some(format!("{what}: {}", error.message)));
        }
    }

    pub fn refresh_conversations(self) {
        spawn_local(async move {
            match api::call::<Vec<Conversation>>("GET", "/v1/conversations", None).await {
                Ok(list) => self.conversations.set(list),
                Err(e) => self.failed("could not list conversations", e),
            }
        });
    }

    fn load_detail(self, name: String) {
        self.detail.set(None);
        spawn_local(async move {
            match api::call::<DatasetDetail>("GET", &format!("/v1/datasets/{}", api::encode(&name)), None).await {
                Ok(detail) if self.dataset.get_untracked() == detail.info.name => self.detail.set(Some(detail)),
                Ok(_) => {}
                Err(e) => self.failed(&format!("could not load dataset {name}"), e),
            }
        });
    }

    pub fn choose_dataset(self, name: String) {
        if self.dataset.get_untracked() == name {
            return;
        }
        self.dataset.set(name.clone());
        self.new_chat();
        self.load_detail(name);
    }

    pub fn new_chat(self) {
        self.stop();
        self.conversation.set(None);
        self.turns.set(Vec::new());
    }

    pub fn stop(self) {
        RUNNING.with(|running| {
            if let Some(controller) = running.borrow_mut().take() {
                controller.abort();
            }
        });
    }

    pub fn ask(self, question: String) {
        let question = question.trim().to_string();
        if question.is_empty() || self.running.get_untracked() {
            return;
        }
        let turn = Turn::new(self.next_key(), question.clone(), self.dataset.get_untracked());
        self.turns.update(|turns| turns.push(turn));
        self.last_question.set(question);
        self.draft.set(String::new());
        self.run_turn(turn, None);
    }

    pub fn retry(self, turn: Turn) {
        if self.running.get_untracked() {
            return;
        }
        turn.reset();
        self.run_turn(turn, None);
    }

    /// Runs the turn's query at the cost its estimate said.
    pub fn confirm(self, turn: Turn) {
        let Some(confirmation) = turn.confirm.get_untracked() else { return };
        if self.running.get_untracked() {
            return;
        }
        turn.reset();
        self.run_turn(turn, Some(confirmation.estimate_id));
    }

    /// Leaves the turn's costly query unrun.
    pub fn cancel(self, turn: Turn) {
        turn.confirm.set(None);
        turn.error.set(Some(ApiError::new("cancelled", "Not run: the query's cost was not confirmed.")));
    }

    fn run_turn(self, turn: Turn, estimate_id: Option<String>) {
        let Ok(controller) = AbortController::new() else {
            turn.error.set(Some(ApiError::new("internal", "this browser cannot cancel requests")));
            return;
        };
        let signal = controller.signal();
        RUNNING.with(|running| *running.borrow_mut() = Some(controller));
        self.running.set(true);
        turn.stage.set(Some("Sending the question…".into()));
        let mut body = json!({"question": turn.question.get_value(), "dataset": turn.dataset.get_value()});
        if let Some(id) = self.conversation.get_untracked() {
            body["conversation_id"] = json!(id);
        }
        if let Some(id) = estimate_id {
            body["confirm"] = json!(true);
            body["estimate_id"] = json!(id);
        }
        spawn_local(async move {
            let mut finished = false;
            let result = api::ask_stream(body, signal, |event| finished |= self.apply_event(turn, event)).await;
            RUNNING.with(|running| running.borrow_mut().take());
            self.running.set(false);
            turn.stage.set(None);
            match result {
                Err(error) if error.is_abort() => {
                    turn.error.set(Some(ApiError::new("stopped", "Stopped before the answer was complete.")))
                }
                Err(error) if error.confirmation().is_some() => turn.confirm.set(error.confirmation()),
                Err(error) if error.code == "unauthorized" => self.failed("the question was not sent", error),
                Err(error) => turn.error.set(Some(error)),
                Ok(()) if !finished => {
                    turn.error.set(Some(ApiError::new("unreachable", "the connection closed before the answer was complete")))
                }
                Ok(()) => {}
            }
        });
    }

    /// Applies one streamed event to the turn; true when it ends the answer.
    fn apply_event(self, turn: Turn, event: Event) -> bool {
        match event {
            Event::Stage { stage, attempt } => {
                let text = match (stage, attempt) {
                    (Stage::Synthesis, 1) => "Writing SQL…".to_string(),
                    (Stage::Synthesis, n) => format!("Fixing the SQL (attempt {n})…"),
                    (Stage::Execution, _) => "Running the query…".to_string(),
                    (Stage::Generation, _) => "Writing the answer…".to_string(),
                };
                turn.stage.set(Some(text));
            }
            Event::Sql { sql, .. } => turn.sql.set(Some(sql)),
            Event::Progress(progress) => turn.stage.set(Some(progress_text(&progress))),
            Event::Model(readiness) => turn.stage.set(Some(model_text(&readiness))),
            Event::Rows { columns, rows, row_count, truncated } => turn.table.set(Some(TableData { columns, rows, row_count, truncated })),
            Event::Token { text } => turn.answer.update(|answer| answer.push_str(&text)),
            Event::Done(response) => {
                let response = *response;
                turn.answer.set(response.answer);
                turn.sql.set(response.sql);
                let table = TableData {
                    columns: response.columns,
                    rows: response.rows,
                    row_count: response.row_count,
                    truncated: response.truncated,
                };
                turn.table.set(Some(table).filter(|t| !t.columns.is_empty()));
                turn.turn_id.set(Some(response.turn_id));
                turn.stats.set(Some(response.stats));
                let id = response.conversation_id;
                let new_conversation = self.conversation.get_untracked().as_deref() != Some(id.as_str());
                self.conversation.set(Some(id));
                if new_conversation {
                    self.refresh_conversations();
                }
                return true;
            }
            Event::Error { code, message, details } => {
                match details.as_ref().and_then(|details| api::confirmation(&code, details)) {
                    Some(confirmation) => turn.confirm.set(Some(confirmation)),
                    None => turn.error.set(Some(ApiError { code, message, details })),
                }
                return true;
            }
        }
        false
    }

    pub fn open_conversation(self, id: String) {
        self.stop();
        spawn_local(async move {
            let detail = match api::call::<ConversationDetail>("GET", &format!("/v1/conversations/{}", api::encode(&id)), None).await {
                Ok(detail) => detail,
                Err(e) => {
                    self.failed("could not open the conversation", e);
                    return;
                }
            };
            let dataset = detail.conversation.dataset.clone();
            if self.dataset.get_untracked() != dataset {
                self.dataset.set(dataset.clone());
                self.load_detail(dataset.clone());
            }
            let turns = detail
                .turns
                .into_iter()
                .map(|stored| {
                    let turn = Turn::new(self.next_key(), stored.question, dataset.clone());
                    turn.answer.set(stored.answer);
                    turn.sql.set(stored.sql);
                    turn.stored_rows.set(stored.row_count);
                    turn.turn_id.set(Some(stored.id));
                    turn
                })
                .collect();
            self.conversation.set(Some(detail.conversation.id));
            self.turns.set(turns);
            self.panel_open.set(false);
        });
    }

    fn rename_conversation(self, conversation: Conversation) {
        let Some(window) = web_sys::window() else { return };
        let Ok(Some(title)) = window.prompt_with_message_and_default("Rename the conversation", &conversation.title) else { return };
        if title.trim().is_empty() {
            return;
        }
        spawn_local(async move {
            let path = format!("/v1/conversations/{}", api::encode(&conversation.id));
            match api::call::<Value>("PATCH", &path, Some(json!({"title": title.trim()}))).await {
                Ok(_) => self.refresh_conversations(),
                Err(e) => self.failed("could not rename", e),
            }
        });
    }

    fn delete_conversation(self, conversation: Conversation) {
        let Some(window) = web_sys::window() else { return };
        if !window.confirm_with_message(&format!("Delete “{}”?", conversation.title)).unwrap_or(false) {
            return;
        }
        spawn_local(async move {
            let path = format!("/v1/conversations/{}", api::encode(&conversation.id));
            match api::call::<Value>("DELETE", &path, None).await {
                Ok(_) => {
                    if self.conversation.get_untracked().as_deref() == Some(conversation.id.as_str()) {
                        self.new_chat();
                    }
                    self.refresh_conversations();
                }
                Err(e) => self.failed("could not delete", e),
            }
        });
    }
}

/// The model-preparation event as a line: downloading (with megabytes), verifying,
/// loading, or why it failed.
fn model_text(readiness: &Readiness) -> String {
    let megabytes = |bytes: u64| format!("{:.0} MB", bytes as f64 / 1e6);
    match readiness {
        Readiness::Failed(why) => format!("The model cannot be used: {why}"),
        Readiness::Preparing(Preparing::Downloading { done, total: Some(total) }) => {
            format!("Downloading the model: {} of {}…", megabytes(*done), megabytes(*total))
        }
        Readiness::Preparing(Preparing::Downloading { done, total: None }) => format!("Downloading the model: {}…", megabytes(*done)),
        Readiness::Preparing(Preparing::Verifying) => "Verifying the model…".into(),
        Readiness::Preparing(Preparing::Loading) => "Loading the model…".into(),
        Readiness::Ready => "Preparing the model…".into(),
    }
}

/// "Running: 3 of 10 LLM calls · 2 cache hits · 40 rows".
fn progress_text(progress: &Progress) -> String {
    let sum = |field: fn(&tag_types::OperatorStats) -> u64| -> u64 { progress.operators.iter().map(field).sum() };
    let (calls, distinct, cache_hits, rows) =
        (sum(|op| op.llm_calls), sum(|op| op.distinct_prompts), sum(|op| op.cache_hits), sum(|op| op.rows));
    let to_call = distinct.saturating_sub(cache_hits).max(calls);
    format!("Running: {calls} of {to_call} LLM calls · {cache_hits} cache hits · {rows} rows")
}

#[component]
pub fn App() -> impl IntoView {
    let ctx = Ctx {
        datasets: RwSignal::new(Vec::new()),
        dataset: RwSignal::new(String::new()),
        detail: RwSignal::new(None),
        conversations: RwSignal::new(Vec::new()),
        conversation: RwSignal::new(None),
        turns: RwSignal::new(Vec::new()),
        running: RwSignal::new(false),
        draft: RwSignal::new(String::new()),
        last_question: RwSignal::new(String::new()),
        page_error: RwSignal::new(None),
        panel_open: RwSignal::new(false),
        model: RwSignal::new(String::new()),
        tiny_model: RwSignal::new(false),
        screen: RwSignal::new(Screen::Loading),
        me: RwSignal::new(None),
        sign_in_error: RwSignal::new(None),
        next_key: RwSignal::new(0),
    };
    provide_context(ctx);
    ctx.start();
    let signed_in = move || ctx.me.get().filter(|me| me.auth_required);
    let is_admin = move || ctx.me.get().is_some_and(|me| me.role == "admin");

    view! {
        <header class="topbar">
            <button class="icon panel-toggle" aria-label="Show or hide the dataset panel" aria-expanded=move || ctx.panel_open.get().to_string()
                on:click=move |_| ctx.panel_open.update(|open| *open = !*open)>"☰"</button>
            <h1>"TAG"<span class="subtitle">" · ask your tables"</span></h1>
            <span class="model">{move || ctx.model.get()}</span>
            {move || is_admin().then(|| {
                let audit = move || ctx.screen.get() == Screen::Audit;
                view! {
                    <button class="link screen-toggle" on:click=move |_| ctx.screen.set(if audit() { Screen::Chat } else { Screen::Audit })>
                        {move || if audit() { "Chat" } else { "Audit" }}
                    </button>
                }
            })}
            {move || signed_in().map(|me| view! {
                <span class="who">"Signed in as "<strong>{me.name.clone()}</strong>{format!(" ({})", me.role)}</span>
                <button class="link sign-out" on:click=move |_| ctx.sign_out()>"Sign out"</button>
            })}
        </header>
        {move || match ctx.screen.get() {
            Screen::Loading => view! { <p class="muted loading">"Loading…"</p> }.into_any(),
            Screen::SignIn => view! { <SignIn/> }.into_any(),
            Screen::Audit => view! { <div class="layout single"><AuditView/></div> }.into_any(),
            Screen::Chat => view! {
                <div class="layout">
                    <Sidebar/>
                    <main class="chat">
                        {move || ctx.page_error.get().map(|message| view! {
                            <div class="banner error" role="alert">
                                <span>{message}</span>
                                <button class="link" on:click=move |_| ctx.page_error.set(None)>"Dismiss"</button>
                            </div>
                        })}
                        {move || ctx.tiny_model.get().then(|| view! {
                            <div class="banner notice" role="status">
                                <span>
                                    "This server answers with its built-in default model, SmolLM2-135M: tiny, so that it runs offline \
on any laptop, and often wrong. For real answers, point the server at a real model: set "
                                    <code>"TAG_LLM_BASE_URL"</code>" (and "<code>"TAG_LLM_MODEL"</code>") to an OpenAI-compatible server \
such as vLLM, llama.cpp's server or Ollama, or "<code>"TAG_LLM_MODEL_PATH"</code>" to a larger GGUF file. \
This note is shown once."
                                </span>
                                <button class="link" on:click=move |_| ctx.tiny_model.set(false)>"Dismiss"</button>
                            </div>
                        })}
                        <section class="thread" aria-live="polite">
                            <Show when=move || ctx.turns.with(Vec::is_empty)>
                                <Welcome/>
                            </Show>
                            <For each=move || ctx.turns.get() key=|turn| turn.key let:turn>
                                <TurnView turn/>
                            </For>
                        </section>
                        <Composer/>
                    </main>
                </div>
            }.into_any(),
        }}
    }
}

/// The access-token form, when the server requires tokens.
#[component]
fn SignIn() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let token = RwSignal::new(String::new());
    view! {
        <main class="sign-in">
            <form class="sign-in-form" on:submit=move |event: ev::SubmitEvent| { event.prevent_default(); ctx.sign_in(token.get_untracked()); }>
                <h2>"Sign in"</h2>
                <p class="muted">"This server needs an access token. An admin creates one with "<code>"tag-server token create"</code>"."</p>
                <label class="field-label" for="token">"Access token"</label>
                <input id="token" type="password" autocomplete="off" prop:value=move || token.get()
                    on:input=move |event| token.set(event_target_value(&event))/>
                {move || ctx.sign_in_error.get().map(|message| view! { <p class="error-text" role="alert">{message}</p> })}
                <button type="submit" class="primary" disabled=move || token.with(|t| t.trim().is_empty())>"Sign in"</button>
            </form>
        </main>
    }
}

#[component]
fn Welcome() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let summary = move || ctx.datasets.get().into_iter().find(|d| d.name == ctx.dataset.get());
    view! {
        <div class="welcome">
            <h2>{move || summary().map(|d| format!("Ask about {}", d.name)).unwrap_or_else(|| "Ask about your tables".into())}</h2>
            <p>{move || summary().map(|d| d.description).unwrap_or_default()}</p>
            <div class="examples">
                {move || summary().map(|d| d.examples).unwrap_or_default().into_iter().map(|example| {
                    let text = example.clone();
                    view! { <button class="example" on:click=move |_| ctx.ask(text.clone())>{example}</button> }
                }).collect_view()}
            </div>
        </div>
    }
}

#[component]
fn Sidebar() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    view! {
        <aside class="sidebar" class:open=move || ctx.panel_open.get() aria-label="Dataset and conversations">
            <label class="field-label" for="dataset-select">"Dataset"</label>
            <select id="dataset-select" on:change=move |event| ctx.choose_dataset(event_target_value(&event))>
                {move || ctx.datasets.get().into_iter().map(|d| {
                    let selected = d.name == ctx.dataset.get();
                    let label = if d.available { d.name.clone() } else { format!("{} (unavailable)", d.name) };
                    let title = d.reason.clone().unwrap_or_default();
                    view! { <option value=d.name.clone() selected=selected disabled=!d.available title=title>{label}</option> }
                }).collect_view()}
            </select>
            <button class="primary wide" on:click=move |_| { ctx.new_chat(); ctx.panel_open.set(false); }>"+ New chat"</button>

            <h2>"Conversations"</h2>
            <ul class="conversations">
                {move || {
                    let current = ctx.conversation.get();
                    ctx.conversations.get().into_iter().map(|c| {
                        let (open, rename, delete) = (c.clone(), c.clone(), c.clone());
                        let active = current.as_deref() == Some(c.id.as_str());
                        view! {
                            <li class:active=active>
                                <button class="conversation" title=c.dataset.clone() on:click=move |_| ctx.open_conversation(open.id.clone())>{c.title.clone()}</button>
                                <button class="icon" aria-label=format!("Rename {}", c.title) on:click=move |_| ctx.rename_conversation(rename.clone())>"✎"</button>
                                <button class="icon" aria-label=format!("Delete {}", c.title) on:click=move |_| ctx.delete_conversation(delete.clone())>"×"</button>
                            </li>
                        }
                    }).collect_view()
                }}
            </ul>

            <h2>"Try asking"</h2>
            <ul class="panel-examples">
                {move || {
                    let dataset = ctx.dataset.get();
                    ctx.datasets.get().into_iter().filter(|d| d.name == dataset).flat_map(|d| d.examples).map(|example| {
                        let text = example.clone();
                        view! { <li><button class="link" on:click=move |_| { ctx.panel_open.set(false); ctx.ask(text.clone()); }>{example}</button></li> }
                    }).collect_view()
                }}
            </ul>

            <h2>"Tables"</h2>
            {move || match ctx.detail.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(detail) => view! { <SchemaView detail/> }.into_any(),
            }}
        </aside>
    }
}

#[component]
fn SchemaView(detail: DatasetDetail) -> impl IntoView {
    let joins = detail.info.joins.clone();
    view! {
        <p class="muted">{detail.info.description.clone()}</p>
        <div class="schema">
            {detail.info.tables.into_iter().map(|table| {
                let sample = detail.sample_rows.get(&table.name).cloned();
                view! {
                    <details class="table-info">
                        <summary><strong>{table.name.clone()}</strong>" "<span class="muted">{format!("{} rows", table.row_count)}</span></summary>
                        {table.description.clone().map(|d| view! { <p class="muted">{d}</p> })}
                        <ul class="columns">
                            {table.columns.into_iter().map(|column| view! {
                                <li>
                                    <code>{column.name}</code>" "<span class="type">{column.data_type}</span>
                                    {column.description.map(|d| view! { <div class="muted small">{d}</div> })}
                                </li>
                            }).collect_view()}
                        </ul>
                        {sample.map(|sample| view! {
                            <div class="sample">
                                <div class="small muted">"Sample rows"</div>
                                <div class="table-scroll">
                                    <table class="small">
                                        <thead><tr>{sample.columns.iter().map(|c| view! { <th>{c.name.clone()}</th> }).collect_view()}</tr></thead>
                                        <tbody>{sample.rows.iter().map(|row| view! {
                                            <tr>{row.iter().map(|v| view! { <td>{crate::render::cell_text(v)}</td> }).collect_view()}</tr>
                                        }).collect_view()}</tbody>
                                    </table>
                                </div>
                            </div>
                        })}
                    </details>
                }
            }).collect_view()}
        </div>
        {(!joins.is_empty()).then(|| view! {
            <h2>"Joins"</h2>
            <ul class="joins">{joins.into_iter().map(|j| view! { <li><code>{j}</code></li> }).collect_view()}</ul>
        })}
    }
}

#[component]
fn Composer() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let on_keydown = move |event: ev::KeyboardEvent| {
        if event.key() == "Enter" && !event.shift_key() && !event.is_composing() {
            event.prevent_default();
            ctx.ask(ctx.draft.get_untracked());
        } else if event.key() == "ArrowUp" && ctx.draft.with_untracked(String::is_empty) {
            event.prevent_default();
            ctx.draft.set(ctx.last_question.get_untracked());
        }
    };
    view! {
        <form class="composer" on:submit=move |event: ev::SubmitEvent| { event.prevent_default(); ctx.ask(ctx.draft.get_untracked()); }>
            <textarea id="question" rows="2" aria-label="Question" placeholder="Ask a question about the data (Enter sends, Shift+Enter for a new line)"
                prop:value=move || ctx.draft.get()
                on:input=move |event| ctx.draft.set(event_target_value(&event))
                on:keydown=on_keydown></textarea>
            {move || if ctx.running.get() {
                view! { <button type="button" class="stop" on:click=move |_| ctx.stop()>"Stop"</button> }.into_any()
            } else {
                view! { <button type="submit" class="primary" disabled=move || ctx.draft.with(|d| d.trim().is_empty())>"Send"</button> }.into_any()
            }}
        </form>
    }
}
