//! Names to dense indexes and back: the item (or user) ids a caller knows, and the
//! `u32` rows and columns the models use. Stored with a model so it serves alone.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A list of distinct names, each with the index of its first appearance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Vocabulary {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocabulary {
    /// An empty vocabulary.
    pub fn new() -> Vocabulary {
        Vocabulary::default()
    }

    /// The index of `name`, adding it at the end when new.
    pub fn insert(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    /// The index of `name`, if known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// The name at index `i`.
    pub fn name(&self, i: u32) -> Option<&str> {
        self.names.get(i as usize).map(String::as_str)
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl From<Vec<String>> for Vocabulary {
    fn from(names: Vec<String>) -> Vocabulary {
        let mut v = Vocabulary::new();
        for n in &names {
            v.insert(n);
        }
        v
    }
}

impl From<Vocabulary> for Vec<String> {
    fn from(v: Vocabulary) -> Vec<String> {
        v.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_in_order_of_first_appearance() {
        let mut v = Vocabulary::new();
        assert_eq!(v.insert("b"), 0);
        assert_eq!(v.insert("a"), 1);
        assert_eq!(v.insert("b"), 0);
        assert_eq!(v.get("a"), Some(1));
        assert_eq!(v.name(0), Some("b"));
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"["b","a"]"#);
        assert_eq!(serde_json::from_str::<Vocabulary>(&json).unwrap(), v);
    }
}
