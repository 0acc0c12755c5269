//! The campaign routes: `/campaigns`, `/dnc/{list}` and `/calls/{id}/disposition`, answered
//! by the campaign runner.
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `POST /campaigns` | the definition file (`application/toml`) | `201` with the campaign's status |
//! | `GET /campaigns` | | `200` with every campaign's status |
//! | `GET /campaigns/{name}` | | `200` with its status |
//! | `POST /campaigns/{name}/leads` | a CSV lead list (`text/csv`) | `200` `{"imported": N, "rejected": [{"line", "number", "reason"}]}` |
//! | `POST /campaigns/{name}/start\|pause\|resume\|stop` | none | `200` with its status, `409` when its state forbids it |
//! | `GET /campaigns/{name}/leads[?state=S]` | | `200` with every lead and its attempts |
//! | `POST /calls/{id}/disposition` | `{"code", "callback_at", "note"}` | `200` |
//! | `POST /dnc/{list}`, `POST /dnc/{list}/remove` | `{"numbers": [...]}` | `200` `{"added": N}` / `{"removed": N}` |
//! | `GET /dnc/{list}` | | `200` `{"list", "numbers"}` |
//!
//! Errors are `{"error": NAME, "detail": ...}` like the rest of the API: `not_found` (404),
//! `conflict` (409), `invalid_definition` (422, detail: one `file:line:column: key: message`
//! per problem), `bad_request` (400), `store` (500), `unavailable` (503: the dialer runs no
//! campaigns).

use super::{bad_request, error, AppState, REPLY_TIMEOUT};
use crate::campaigns::{CampaignError, CampaignRequest, DispositionRequest, DncRequest};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

/// Largest lead list one request may carry (a million leads of a few columns).
pub const MAX_LEADS_BODY: usize = 256 * 1024 * 1024;

/// The routes, for the API's router.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/campaigns", post(create).get(list))
        .route("/campaigns/:name", get(status))
        .route(
            "/campaigns/:name/leads",
            post(import)
                .get(leads)
                .layer(DefaultBodyLimit::max(MAX_LEADS_BODY)),
        )
        .route("/campaigns/:name/:verb", post(control))
        .route("/calls/:id/disposition", post(disposition))
        .route("/dnc/:list", get(dnc_list).post(dnc_add))
        .route("/dnc/:list/remove", post(dnc_remove))
}

fn status_of(e: &CampaignError) -> StatusCode {
    match e {
        CampaignError::NotFound(_) => StatusCode::NOT_FOUND,
        CampaignError::Conflict(_) => StatusCode::CONFLICT,
        CampaignError::InvalidDefinition(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CampaignError::BadRequest(_) => StatusCode::BAD_REQUEST,
        CampaignError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        CampaignError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn ask(state: &AppState, request: CampaignRequest, created: bool) -> Response {
    let Some(runner) = &state.campaigns else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this dialer runs no campaigns (`dialer run` does)",
        );
    };
    let rx = runner.ask(request);
    match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        Ok(Ok(Ok(value))) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(value)).into_response()
        }
        Ok(Ok(Err(e))) => (status_of(&e), Json(e)).into_response(),
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the campaign runner stopped",
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the campaign runner did not answer within {} s",
                REPLY_TIMEOUT.as_secs()
            ),
        ),
    }
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Box<Response>> {
    body.map_err(|e| {
        Box::new(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(e.status(), "payload_too_large", e.body_text())
        } else {
            bad_request(e.body_text())
        })
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateQuery {
    /// The file name errors use.
    file: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    query: Query<CreateQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_or_error(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return bad_request("the campaign definition is not UTF-8");
    };
    let file = query
        .0
        .file
        .filter(|f| !f.is_empty() && f.len() <= 256 && !f.chars().any(char::is_control))
        .unwrap_or_else(|| "campaign.toml".into());
    ask(&state, CampaignRequest::Create { text, file }, true).await
}

async fn list(State(state): State<AppState>) -> Response {
    ask(&state, CampaignRequest::List, false).await
}

async fn status(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    ask(&state, CampaignRequest::Status { name }, false).await
}

async fn import(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let csv = match body_or_error(body) {
        Ok(b) => b.to_vec(),
        Err(r) => return *r,
    };
    ask(&state, CampaignRequest::Import { name, csv }, false).await
}

async fn control(
    State(state): State<AppState>,
    Path((name, verb)): Path<(String, String)>,
) -> Response {
    if !["start", "pause", "resume", "stop"].contains(&verb.as_str()) {
        return error(StatusCode::NOT_FOUND, "not_found", "no such route");
    }
    ask(&state, CampaignRequest::Control { name, verb }, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadsQuery {
    state: Option<String>,
}

async fn leads(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Query<LeadsQuery>,
) -> Response {
    ask(
        &state,
        CampaignRequest::Leads {
            name,
            state: query.0.state,
        },
        false,
    )
    .await
}

fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Box<Response>> {
    let body = body_or_error(body)?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| Box::new(bad_request(e.to_string())))
}

async fn disposition(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body: DispositionRequest = match json_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    ask(
        &state,
        CampaignRequest::Disposition { call: id, body },
        false,
    )
    .await
}

async fn dnc_list(State(state): State<AppState>, Path(list): Path<String>) -> Response {
    ask(&state, CampaignRequest::DncList { list }, false).await
}

async fn dnc_change(
    state: AppState,
    list: String,
    body: Result<Bytes, BytesRejection>,
    remove: bool,
) -> Response {
    let body: DncRequest = match json_body(body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    ask(
        &state,
        CampaignRequest::Dnc {
            list,
            numbers: body.numbers,
            remove,
        },
        false,
    )
    .await
}

async fn dnc_add(
    State(state): State<AppState>,
    Path(list): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    dnc_change(state, list, body, false).await
}

async fn dnc_remove(
    State(state): State<AppState>,
    Path(list): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    dnc_change(state, list, body, true).await
}
