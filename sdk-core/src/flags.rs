//! Feature flags as the collector evaluates them for this install (`POST /v1/flags`,
//! the install's id in the body, never in a URL).
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

impl Engine {
    /// Every flag for this install. Its id is sent only once the user answered the
    /// consent question; before, each flag's value for no one in particular.
    pub(crate) fn fetch_flags(&self) -> Result<HashMap<String, FlagDetails>> {
        let subject = (!self.consent().needs_prompt).then(|| self.anonymous_id());
        let body = serde_json::json!({ "subject": subject })
            .to_string()
            .into_bytes();
        let response = self.transport.post(self.request_to("/v1/flags", body))?;
        match response.status {
            200 => {}
            401 | 403 => return Err(AssentError::Unauthorized),
            s => {
                return Err(AssentError::Network {
                    reason: format!("the collector answered {s} to the flags request"),
                })
            }
        }
        let answer: Value =
            serde_json::from_slice(&response.body).map_err(|_| AssentError::Network {
                reason: "the flags answer is not JSON".into(),
            })?;
        let flags = answer["flags"]
            .as_object()
            .ok_or_else(|| AssentError::Network {
                reason: "the flags answer has no flags".into(),
            })?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
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
}
