//! What the collector serves this install: feature flags (`POST /v1/flags`) and the
//! variant of a content slot (`POST /v1/content/{slot}`), the install's id in the body,
//! never in a URL.
use std::collections::HashMap;

use serde_json::Value;

use crate::{
    engine::Engine,
    error::{AssentError, Result},
};

/// One flag's value for this install, as OpenFeature describes a resolution.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FlagDetails {
    /// The value, as JSON (`true`, `"blue"`, `3`, `{...}`; `null` when the flag is off).
    pub value_json: String,
    /// The variant served, when one was.
    pub variant: Option<String>,
    /// `STATIC`, `DEFAULT`, `TARGETING_MATCH`, `SPLIT`, `DISABLED` or `ERROR`.
    pub reason: String,
    /// With `ERROR`: `TYPE_MISMATCH`, `TARGETING_KEY_MISSING`, `FLAG_NOT_FOUND`…
    pub error_code: Option<String>,
}

/// The variant of a content slot served to this install, for the app to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ContentDetails {
    /// The slot's block type (`headline`, `banner`, `product_list`…).
    pub block_type: String,
    /// The variant served.
    pub variant: String,
    /// Why this variant: `fallback` (no consent to personalize, or no profile yet),
    /// `default`, `targeting` or `experiment`.
    pub reason: String,
    /// The block's fields, as a JSON object.
    pub content_json: String,
    /// The block rendered by its type's template (HTML-escaped), when it has one.
    pub html: Option<String>,
    /// The experiment the variant was assigned by, when one runs on the slot.
    pub experiment: Option<String>,
}

impl Engine {
    /// Every flag for this install.
    pub(crate) fn fetch_flags(&self) -> Result<HashMap<String, FlagDetails>> {
        let answer = self
            .ask("/v1/flags", "flags")?
            .ok_or_else(|| network("the collector answered 404 to the flags request"))?;
        let flags = answer["flags"]
            .as_object()
            .ok_or_else(|| network("the flags answer has no flags"))?;
        Ok(flags
            .iter()
            .map(|(key, d)| {
                let details = FlagDetails {
                    value_json: d["value"].to_string(),
                    variant: text(&d["variant"]),
                    reason: text(&d["reason"]).unwrap_or_else(|| "ERROR".into()),
                    error_code: text(&d["errorCode"]),
                };
                (key.clone(), details)
            })
            .collect())
    }

    /// The variant of `slot` for this install.
    pub(crate) fn fetch_content(&self, slot: &str) -> Result<ContentDetails> {
        let named = (1..=64).contains(&slot.len())
            && slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !named {
            return Err(AssentError::invalid_argument(
                "slot: 1 to 64 lowercase letters, digits, '_' or '-'",
            ));
        }
        let answer = self
            .ask(&format!("/v1/content/{slot}"), "content")?
            .ok_or_else(|| AssentError::invalid_argument("the collector has no such slot"))?;
        let field = |name: &str| {
            text(&answer[name]).ok_or_else(|| network("the content answer is incomplete"))
        };
        if !answer["content"].is_object() {
            return Err(network("the content answer is incomplete"));
        }
        Ok(ContentDetails {
            block_type: field("blockType")?,
            variant: field("variant")?,
            reason: field("reason")?,
            content_json: answer["content"].to_string(),
            html: text(&answer["html"]),
            experiment: text(&answer["experiment"]),
        })
    }

    /// A POST naming this install to `path`, and the collector's JSON answer (none on a
    /// 404, which each caller reads in its own way). Its id is sent only once the user
    /// answered the consent question; before, the answer for no one in particular.
    fn ask(&self, path: &str, what: &str) -> Result<Option<Value>> {
        let subject = (!self.consent().needs_prompt).then(|| self.anonymous_id());
        let body = serde_json::json!({ "subject": subject })
            .to_string()
            .into_bytes();
        let response = self.transport.post(self.request_to(path, body))?;
        match response.status {
            200 => {}
            401 | 403 => return Err(AssentError::Unauthorized),
            404 => return Ok(None),
            s => {
                return Err(network(&format!(
                    "the collector answered {s} to the {what} request"
                )))
            }
        }
        serde_json::from_slice(&response.body)
            .map(Some)
            .map_err(|_| network(&format!("the {what} answer is not JSON")))
    }
}

fn network(reason: &str) -> AssentError {
    AssentError::Network {
        reason: reason.into(),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}
