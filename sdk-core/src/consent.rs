//! Consent per purpose: the persisted state and the rules for changing it.
//!
//! Rules: opt-in (a purpose is off until granted); `necessary` is always on; a new policy
//! version switches optional purposes off until the user answers again; a GPC signal
//! denies `advertising`. Each change yields the record that proves it.
use std::{collections::HashMap, path::Path};

use assent_protocol::{ConsentMethod, Purpose, PurposeMap, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{
    error::{AssentError, Result},
    storage,
};

const STATE_FILE: &str = "state.json";
const FORMAT: u32 = 1;

/// What is persisted in `storage_dir/state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PersistedState {
    pub format: u32,
    /// Optional purposes granted; `necessary` is implied.
    pub granted: Vec<Purpose>,
    /// Policy version the state belongs to.
    pub policy_version: Option<String>,
    /// Whether the user answered under `policy_version`.
    pub answered: bool,
    pub updated_at: Option<Timestamp>,
    /// Whether a GPC signal is in force (and was recorded).
    pub gpc: bool,
    /// The userId events carry (already pseudonymized when a pepper is configured).
    pub user_id: Option<String>,
}

impl Default for PersistedState {
    fn default() -> Self {
        PersistedState {
            format: FORMAT,
            granted: Vec::new(),
            policy_version: None,
            answered: false,
            updated_at: None,
            gpc: false,
            user_id: None,
        }
    }
}

impl PersistedState {
    pub(crate) fn load(dir: &Path) -> Result<PersistedState> {
        match storage::read_if_exists(&dir.join(STATE_FILE))? {
            None => Ok(PersistedState::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|_| AssentError::Storage {
                reason: "state.json is unreadable".into(),
            }),
        }
    }

    /// Persisted (fsync'd, atomically replaced) before this returns.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).expect("state serializes");
        storage::write_atomically(&dir.join(STATE_FILE), &bytes)?;
        Ok(())
    }

    /// Whether events of `purpose` may be collected now.
    pub(crate) fn allows(&self, purpose: Purpose) -> bool {
        purpose == Purpose::Necessary || self.granted.contains(&purpose)
    }

    /// The full map, `necessary` included.
    pub(crate) fn purposes(&self) -> PurposeMap {
        Purpose::ALL
            .into_iter()
            .map(|p| (p, self.allows(p)))
            .collect()
    }

    fn set_granted(&mut self, map: &PurposeMap) {
        self.granted = map
            .iter()
            .filter(|(p, on)| **on && **p != Purpose::Necessary)
            .map(|(p, _)| *p)
            .collect();
    }
}

/// One change of consent: what the record must say and what the engine must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub method: ConsentMethod,
    pub previous: PurposeMap,
    pub purposes: PurposeMap,
    /// Purposes that went from granted to denied: their queued events are purged.
    pub withdrawn: Vec<Purpose>,
}

impl Change {
    fn between(method: ConsentMethod, previous: PurposeMap, purposes: PurposeMap) -> Change {
        let withdrawn = Purpose::ALL
            .into_iter()
            .filter(|p| previous.get(p) == Some(&true) && purposes.get(p) != Some(&true))
            .collect();
        Change {
            method,
            previous,
            purposes,
            withdrawn,
        }
    }

    /// Whether every optional purpose is now denied.
    pub(crate) fn denies_all_optional(&self) -> bool {
        self.purposes
            .iter()
            .all(|(p, on)| *p == Purpose::Necessary || !on)
    }
}

/// A user's answer, parsed: the method and the purposes it names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Choice {
    method: ConsentMethod,
    named: PurposeMap,
}

impl Choice {
    /// Parses what the app passed. Unknown purposes are an error, never a silent grant;
    /// the method must be one a user can choose and agree with the map.
    pub(crate) fn parse(purposes: &HashMap<String, bool>, method: &str) -> Result<Choice> {
        let method: ConsentMethod = method.parse()?;
        let mut named = PurposeMap::new();
        for (name, on) in purposes {
            let p: Purpose = name.parse()?;
            if p == Purpose::Necessary && !on {
                return Err(AssentError::invalid_argument("necessary cannot be denied"));
            }
            named.insert(p, *on);
        }
        let optional = || named.iter().filter(|(p, _)| **p != Purpose::Necessary);
        match method {
            ConsentMethod::AcceptAll if optional().any(|(_, on)| !on) => {
                Err(AssentError::InvalidMethod {
                    reason: "accept_all cannot deny a purpose".into(),
                })
            }
            ConsentMethod::RejectAll | ConsentMethod::Withdraw if optional().any(|(_, on)| *on) => {
                Err(AssentError::InvalidMethod {
                    reason: format!("{method} cannot grant a purpose"),
                })
            }
            ConsentMethod::Gpc | ConsentMethod::PolicyChange => Err(AssentError::InvalidMethod {
                reason: format!("{method} is recorded by the SDK itself (use set_gpc for GPC)"),
            }),
            _ => Ok(Choice { method, named }),
        }
    }

    /// The state after the answer: `accept_all` grants every purpose, `reject_all` denies
    /// every optional one, `custom` and `withdraw` change the purposes they name and keep
    /// the others. GPC keeps `advertising` denied.
    pub(crate) fn apply(&self, state: &mut PersistedState, policy: &str, now: Timestamp) -> Change {
        let previous = state.purposes();
        let mut next: PurposeMap = match self.method {
            ConsentMethod::AcceptAll => Purpose::ALL.into_iter().map(|p| (p, true)).collect(),
            ConsentMethod::RejectAll => Purpose::ALL.into_iter().map(|p| (p, false)).collect(),
            _ => {
                let mut m = previous.clone();
                m.extend(self.named.iter());
                m
            }
        };
        next.insert(Purpose::Necessary, true);
        if state.gpc {
            next.insert(Purpose::Advertising, false);
        }
        state.set_granted(&next);
        state.policy_version = Some(policy.to_owned());
        state.answered = true;
        state.updated_at = Some(now);
        Change::between(self.method, previous, next)
    }
}

/// At start: if the stored answer belongs to another policy version, switch optional
/// purposes off and ask again. Returns the change to record, if any.
pub(crate) fn on_policy(
    state: &mut PersistedState,
    policy: &str,
    now: Timestamp,
) -> Option<Change> {
    match &state.policy_version {
        Some(v) if v == policy => None,
        None => {
            // First start: nothing was ever granted, nothing to record.
            state.policy_version = Some(policy.to_owned());
            None
        }
        Some(_) => {
            let previous = state.purposes();
            state.granted.clear();
            state.policy_version = Some(policy.to_owned());
            state.answered = false;
            state.updated_at = Some(now);
            Some(Change::between(
                ConsentMethod::PolicyChange,
                previous,
                state.purposes(),
            ))
        }
    }
}

/// A GPC signal turning on denies advertising; the change is recorded once. Turning it
/// off grants nothing by itself.
pub(crate) fn on_gpc(state: &mut PersistedState, enabled: bool, now: Timestamp) -> Option<Change> {
    if !enabled || state.gpc {
        state.gpc = enabled;
        return None;
    }
    let previous = state.purposes();
    state.gpc = true;
    state.granted.retain(|p| *p != Purpose::Advertising);
    state.updated_at = Some(now);
    Some(Change::between(
        ConsentMethod::Gpc,
        previous,
        state.purposes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000)
    }

    fn choice(pairs: &[(&str, bool)], method: &str) -> Result<Choice> {
        let map = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Choice::parse(&map, method)
    }

    #[test]
    fn opt_in_by_default_and_necessary_always_on() {
        let s = PersistedState::default();
        assert!(s.allows(Purpose::Necessary));
        for p in [
            Purpose::Analytics,
            Purpose::Personalization,
            Purpose::Advertising,
        ] {
            assert!(!s.allows(p));
        }
    }

    #[test]
    fn unknown_purposes_and_methods_are_errors() {
        assert_eq!(
            choice(&[("telepathy", true)], "custom"),
            Err(AssentError::InvalidPurpose)
        );
        assert!(matches!(
            choice(&[], "maybe"),
            Err(AssentError::InvalidMethod { .. })
        ));
        assert!(matches!(
            choice(&[], "policy_change"),
            Err(AssentError::InvalidMethod { .. })
        ));
        assert!(matches!(
            choice(&[("analytics", true)], "reject_all"),
            Err(AssentError::InvalidMethod { .. })
        ));
        assert!(matches!(
            choice(&[("necessary", false)], "custom"),
            Err(AssentError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn custom_changes_named_purposes_and_reports_withdrawals() {
        let mut s = PersistedState::default();
        let c = choice(&[], "accept_all")
            .unwrap()
            .apply(&mut s, "v1", now());
        assert!(c.withdrawn.is_empty());
        assert!(s.allows(Purpose::Advertising));
        let c = choice(&[("advertising", false)], "withdraw")
            .unwrap()
            .apply(&mut s, "v1", now());
        assert_eq!(c.withdrawn, vec![Purpose::Advertising]);
        assert!(c.previous[&Purpose::Advertising]);
        assert!(s.allows(Purpose::Analytics));
        assert!(!s.allows(Purpose::Advertising));
        assert!(!c.denies_all_optional());
        let c = choice(&[], "reject_all")
            .unwrap()
            .apply(&mut s, "v1", now());
        assert_eq!(
            c.withdrawn,
            vec![Purpose::Analytics, Purpose::Personalization]
        );
        assert!(c.denies_all_optional());
    }

    #[test]
    fn a_new_policy_stops_optional_purposes_until_answered() {
        let mut s = PersistedState::default();
        assert_eq!(on_policy(&mut s, "v1", now()), None);
        choice(&[("analytics", true)], "custom")
            .unwrap()
            .apply(&mut s, "v1", now());
        assert_eq!(on_policy(&mut s, "v1", now()), None);
        let change = on_policy(&mut s, "v2", now()).unwrap();
        assert_eq!(change.method, ConsentMethod::PolicyChange);
        assert_eq!(change.withdrawn, vec![Purpose::Analytics]);
        assert!(!s.answered);
        assert!(!s.allows(Purpose::Analytics));
        assert_eq!(on_policy(&mut s, "v2", now()), None, "recorded once");
    }

    #[test]
    fn gpc_denies_advertising_even_when_accepting_all() {
        let mut s = PersistedState::default();
        choice(&[], "accept_all")
            .unwrap()
            .apply(&mut s, "v1", now());
        let change = on_gpc(&mut s, true, now()).unwrap();
        assert_eq!(change.method, ConsentMethod::Gpc);
        assert_eq!(change.withdrawn, vec![Purpose::Advertising]);
        assert_eq!(on_gpc(&mut s, true, now()), None);
        choice(&[], "accept_all")
            .unwrap()
            .apply(&mut s, "v1", now());
        assert!(!s.allows(Purpose::Advertising));
        assert!(s.allows(Purpose::Personalization));
    }

    #[test]
    fn state_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = PersistedState::default();
        choice(&[("personalization", true)], "custom")
            .unwrap()
            .apply(&mut s, "v3", now());
        s.save(dir.path()).unwrap();
        assert_eq!(PersistedState::load(dir.path()).unwrap(), s);
    }
}
