//! The HTTP layer's errors: JSON for the API (`{"error": {code, message}}`), pages for people.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use casecast_core::case::FieldError;
use casecast_store::case_import::ImportError;
use casecast_store::StoreError;
use serde_json::json;

/// An API error with its status and machine-readable code.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// Results of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 401: no valid token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API token is required: send 'Authorization: Bearer <token>'",
        )
    }
    /// 403: the token's role may not do this.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role in this project may read but not change data",
        )
    }
    /// 404: does not exist, or belongs to another project.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// 422: invalid input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
    /// 503 with `Retry-After`: the server is doing as much of this as it may at once.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }
}

/// Seconds a client is asked to wait before trying again after a 503 (a busy database, or as
/// many sheet reads or password checks as the server allows at once).
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// A 503 tells the client when to try again.
fn with_retry_after(status: StatusCode, mut response: Response) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(RETRY_AFTER_SECONDS),
        );
    }
    response
}

impl ApiError {
    /// 503: the database stayed busy (another process's long write) past the time a request
    /// waits; nothing was changed, and trying again shortly works.
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the database is busy; nothing was changed; try again in a moment",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        with_retry_after(self.status, (self.status, body).into_response())
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<rust_xlsxwriter::XlsxError> for ApiError {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        if matches!(e, rust_xlsxwriter::XlsxError::RowColumnLimitError) {
            return ApiError::invalid(
                "more rows than an .xlsx sheet can hold (1,048,575): download .csv instead",
            );
        }
        tracing::error!(error = %e, "writing an xlsx failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong; it has been logged",
        )
    }
}

impl From<crate::downloads::DownloadError> for ApiError {
    fn from(e: crate::downloads::DownloadError) -> Self {
        match e {
            crate::downloads::DownloadError::Store(e) => e.into(),
            crate::downloads::DownloadError::Xlsx(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            tracing::warn!(error = %e, "the database was busy");
            return ApiError::busy();
        }
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            StoreError::Invalid(f) => f.into(),
            err @ (StoreError::Database(_)
            | StoreError::Io(_)
            | StoreError::Config(_)
            | StoreError::Corrupt { .. }
            | StoreError::Internal(_)) => {
                // Logged with its cause, shown to nobody.
                tracing::error!(error = %err, "storage failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong; it has been logged",
                )
            }
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Sheet(s)
                if matches!(s, casecast_core::sheet::SheetError::TooLarge { .. }) =>
            {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", s.to_string())
            }
            ImportError::Sheet(s) => ApiError::invalid(s.to_string()),
            ImportError::Store(s) => s.into(),
        }
    }
}

/// An error shown as a page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

/// Results of page handlers.
pub type PageResult<T> = Result<T, PageError>;

impl PageError {
    /// 404 page.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: "This page does not exist, or you do not have access to it.".into(),
        }
    }
    /// 403 page.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
    /// 400 page.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            tracing::warn!(error = %e, "the database was busy");
            return Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The database is busy with a large import or upload; nothing was changed. Wait a moment and try again.".into(),
            };
        }
        match e {
            StoreError::NotFound(_) => PageError::not_found(),
            StoreError::Conflict { message, .. } => Self {
                status: StatusCode::CONFLICT,
                message,
            },
            StoreError::Invalid(f) => PageError::bad_request(f.to_string()),
            err @ (StoreError::Database(_)
            | StoreError::Io(_)
            | StoreError::Config(_)
            | StoreError::Corrupt { .. }
            | StoreError::Internal(_)) => {
                tracing::error!(error = %err, "storage failed");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "Something went wrong; it has been logged.".into(),
                }
            }
        }
    }
}

impl From<rust_xlsxwriter::XlsxError> for PageError {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        if matches!(e, rust_xlsxwriter::XlsxError::RowColumnLimitError) {
            return PageError::bad_request("There are more rows than an .xlsx sheet can hold (1,048,575): download .csv instead.");
        }
        tracing::error!(error = %e, "writing an xlsx failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Something went wrong; it has been logged.".into(),
        }
    }
}

impl From<crate::downloads::DownloadError> for PageError {
    fn from(e: crate::downloads::DownloadError) -> Self {
        match e {
            crate::downloads::DownloadError::Store(e) => e.into(),
            crate::downloads::DownloadError::Xlsx(e) => e.into(),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "Something went wrong; it has been logged.".into(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = crate::pages::ErrorPage {
            status: self.status.as_u16(),
            message: &self.message,
        };
        let html = askama::Template::render(&page).unwrap_or_else(|_| self.message.clone());
        with_retry_after(
            self.status,
            (self.status, axum::response::Html(html)).into_response(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use casecast_store::error::SetupError;

    #[test]
    fn file_configuration_stored_data_and_internal_failures_are_a_500_without_details() {
        let failures = || {
            [
                StoreError::Io(std::io::Error::other("/var/lib/casecast/x: disk full")),
                StoreError::Config(SetupError::NoSecretKey),
                StoreError::Corrupt {
                    what: "broadcast schedule",
                    reason: "Data error at line 1, column 3".into(),
                },
                StoreError::Internal("import parser stopped".into()),
            ]
        };
        for e in failures() {
            let shown = e.to_string();
            let api = ApiError::from(e);
            assert_eq!(
                (api.status, api.code, api.message.as_str()),
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong; it has been logged"
                ),
                "{shown}"
            );
        }
        for e in failures() {
            let page = PageError::from(e);
            assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(page.message, "Something went wrong; it has been logged.");
        }
        // What the request got wrong is still said.
        let invalid = ApiError::from(StoreError::Invalid(FieldError::new("name", "is required")));
        assert_eq!(
            (invalid.status, invalid.message.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "name: is required")
        );
    }
}
