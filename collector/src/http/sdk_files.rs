//! The web banner's bundle (`consent-ui/dist`), served at `/sdk/{file}`.
//!
//! Files are read once at start and kept in memory with a gzip copy. A name that carries a
//! content hash (`assent.3f9a0c1e.js`) never changes, so it is cached for a year as
//! immutable; the plain names (`assent.js`) are cached for an hour and revalidated by ETag.
use std::{collections::HashMap, io::Write, path::Path};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::Error;

struct Asset {
    plain: Bytes,
    gzip: Bytes,
    etag: String,
    content_type: &'static str,
    immutable: bool,
}

/// The bundle files, by name (shared: a clone is a pointer).
#[derive(Default, Clone)]
pub struct SdkFiles {
    files: std::sync::Arc<HashMap<String, Asset>>,
}

impl SdkFiles {
    /// Reads every `.js`, `.mjs` and `.json` file directly in `dir`. A missing folder gives
    /// an empty set (the collector still serves its API; `/sdk/` answers 404).
    pub fn load(dir: &Path) -> std::io::Result<SdkFiles> {
        let mut files = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SdkFiles::default()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(content_type) = content_type(&name) else {
                continue;
            };
            if !entry.file_type()?.is_file() {
                continue;
            }
            let plain = Bytes::from(std::fs::read(entry.path())?);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&plain)?;
            let gzip = Bytes::from(gz.finish()?);
            let digest = Sha256::digest(&plain);
            let etag = format!("\"{}\"", crate::pseudonym::hex(&digest[..12]));
            let immutable = has_hash(&name);
            files.insert(
                name,
                Asset {
                    plain,
                    gzip,
                    etag,
                    content_type,
                    immutable,
                },
            );
        }
        Ok(SdkFiles {
            files: std::sync::Arc::new(files),
        })
    }

    /// How many files are served.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

fn content_type(name: &str) -> Option<&'static str> {
    if name.ends_with(".js") || name.ends_with(".mjs") {
        Some("text/javascript; charset=utf-8")
    } else if name.ends_with(".json") {
        Some("application/json")
    } else {
        None
    }
}

/// `name.<8+ hex digits>.ext`: a content-hashed name.
fn has_hash(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 3 && {
        let h = parts[parts.len() - 2];
        h.len() >= 8 && h.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// The web banner's bundle.
///
/// assent.js (cached 1 h), content-hashed copies such as assent.3f9a0c1e.js (cached a
/// year, immutable), the ES module build and the on-demand language and TCF modules.
/// Gzip when accepted; ETag revalidation.
#[utoipa::path(
    get,
    path = "/sdk/{file}",
    tag = "banner",
    params(("file" = String, Path, example = "assent.js")),
    responses(
        (status = 200, description = "JavaScript", content_type = "text/javascript"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "No such file, or the bundle was not built"),
        crate::http::schemas::RouteErrors,
    )
)]
pub async fn serve(
    State(sdk): State<SdkFiles>,
    crate::http::extract::PathParam(file): crate::http::extract::PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let Some(asset) = sdk.files.get(&file) else {
        return Err(Error::NotFound);
    };
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == asset.etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let gzip = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        let mut r = if gzip {
            let mut r = Body::from(asset.gzip.clone()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            Body::from(asset.plain.clone()).into_response()
        };
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&asset.etag).expect("hex etag"),
    );
    // Public code without credentials: any site may load it, also as an ES module.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::has_hash;

    #[test]
    fn hashed_names_are_told_apart() {
        assert!(has_hash("assent.3f9a0c1e.js"));
        assert!(has_hash("lang-de.0123abcd.js"));
        assert!(!has_hash("assent.js"));
        assert!(!has_hash("assent.esm.mjs"));
        assert!(!has_hash("assent.v1.js"));
    }
}
