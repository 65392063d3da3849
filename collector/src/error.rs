//! The collector's one error type, and how it becomes an HTTP answer.
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or unknown key")]
    Unauthorized,
    #[error("this key may not do that")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Unsupported(String),
    #[error("the request was not received in time")]
    Timeout,
    #[error("this path does not take that method")]
    MethodNotAllowed,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The database refused a value of the request as data (PostgreSQL's class 22, data
    /// exception): sending it again cannot succeed, so it is final, not a 503.
    #[error("the request holds a value the database cannot store")]
    Unstorable(#[source] sqlx::Error),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A read on SQLite's reading connections (`storage::Db::sqlite_read`) failed.
    #[error("database unavailable")]
    SqliteRead(#[source] rusqlite::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        let data_exception = match &e {
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.len() == 5 && c.starts_with("22")),
            _ => false,
        };
        if data_exception {
            Error::Unstorable(e)
        } else {
            Error::Unavailable(e)
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::SqliteRead(e)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Internal(format!("migration failed: {e}"))
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Timeout => StatusCode::REQUEST_TIMEOUT,
            Error::Unstorable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            // Every server-side failure is reported as "try again": clients retry 503.
            Error::Unavailable(_)
            | Error::SqliteRead(_)
            | Error::Config(_)
            | Error::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::Forbidden => ErrorCode::Forbidden,
            Error::NotFound => ErrorCode::NotFound,
            Error::TooLarge(_) => ErrorCode::TooLarge,
            Error::Unsupported(_) => ErrorCode::UnsupportedMediaType,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::Timeout => ErrorCode::Timeout,
            Error::Unstorable(_) => ErrorCode::Unstorable,
            Error::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Error::Unavailable(_)
            | Error::SqliteRead(_)
            | Error::Config(_)
            | Error::Internal(_) => ErrorCode::Unavailable,
        }
    }
}

/// What went wrong, as the `code` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Timeout,
    TooLarge,
    UnsupportedMediaType,
    Unstorable,
    RateLimited,
    Unavailable,
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(inline)]
    pub code: ErrorCode,
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SERVICE_UNAVAILABLE || matches!(self, Error::Unstorable(_)) {
            // The cause goes to the log (it names no personal data); the client gets a retry.
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
        }
        let message = match &self {
            Error::Unavailable(_)
            | Error::SqliteRead(_)
            | Error::Internal(_)
            | Error::Config(_) => "temporarily unavailable, retry later".into(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry = match &self {
            Error::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
