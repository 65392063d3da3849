//! Plain interaction files: one interaction per line, `user item [value [timestamp]]`,
//! separated by commas, tabs or spaces; a first line that does not parse as data (its
//! value or timestamp is not a number) is taken for a header; `#` starts a comment.
//! Users and items are any text without separators; a missing value is 1; a missing
//! timestamp is 0; timestamps are integers in any one unit (seconds or ms).

use crate::error::{Error, Result};
use crate::split::Interaction;
use crate::vocab::Vocabulary;

/// Interactions read from a plain file, with the names of their users and items.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The interactions, in file order.
    pub interactions: Vec<Interaction>,
    /// User names by index.
    pub users: Vocabulary,
    /// Item names by index.
    pub items: Vocabulary,
}

/// Parses the file's text; a malformed line is refused with its number and why.
pub fn parse(text: &str) -> Result<Parsed> {
    let mut out = Parsed::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line
            .split([',', '\t', ' '])
            .filter(|f| !f.is_empty())
            .collect();
        let bad = |why: &str| Error::Data(format!("line {}: {why}", n + 1));
        if fields.len() < 2 || fields.len() > 4 {
            return Err(bad(
                "expected user, item, and optionally value and timestamp",
            ));
        }
        let value = match fields.get(2) {
            Some(v) => v.parse::<f32>().ok().filter(|v| v.is_finite()),
            None => Some(1.0),
        };
        let time = match fields.get(3) {
            Some(t) => t.parse::<i64>().ok(),
            None => Some(0),
        };
        let (Some(value), Some(time)) = (value, time) else {
            if out.interactions.is_empty() && out.users.is_empty() {
                continue; // a header
            }
            return Err(bad(
                "the value must be a number and the timestamp an integer",
            ));
        };
        if value < 0.0 {
            return Err(bad("the value must not be negative"));
        }
        let user = out.users.insert(fields[0]);
        let item = out.items.insert(fields[1]);
        out.interactions.push(Interaction {
            user,
            item,
            value,
            time,
        });
    }
    if out.interactions.is_empty() {
        return Err(Error::Data("no interactions".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_separators_and_faults() {
        let p = parse("user,item,value,timestamp\nu1,a,2,100\nu2\tb\nu1 b 1 5 # late\n").unwrap();
        assert_eq!(p.interactions.len(), 3);
        assert_eq!(p.users.len(), 2);
        assert_eq!(p.items.names(), &["a", "b"]);
        assert_eq!(p.interactions[1].value, 1.0);
        assert_eq!(p.interactions[2].time, 5);
        let e = parse("u1,a,1\nu2,b,x\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid data: line 2: the value must be a number and the timestamp an integer"
        );
        assert!(parse("u1,a,-1\n")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(parse("u1\n").is_err());
        assert!(parse("# nothing\n").is_err());
    }
}
