//! Signed statements anyone can check: C2SP signed notes under the trail's Ed25519 key,
//! the C2SP `tlog-checkpoint` body they carry (origin, tree size, root), and the verifier
//! key (`vkey`) text that names the key. Formats in `docs/audit-format.md`.
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::audit::merkle::Hash;

/// The signature type of Ed25519 in C2SP signed notes.
const ED25519: u8 = 0x01;

/// The line that starts each signature: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a note, key or checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the public key is not a verifier key (name+keyid+base64 of 0x01 and 32 bytes)")]
    BadKey,
    #[error("the note is not a signed note (text, a blank line, signature lines)")]
    Malformed,
    #[error("the note carries no signature by {0}")]
    NotSigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("the checkpoint body is not origin, size and base64 root hash")]
    BadCheckpoint,
}

/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`, as C2SP recommends.
fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A name C2SP accepts for a key: non-empty, no spaces, no `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key that signs, under the log's name (its origin).
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("vkey", &self.vkey())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// The signer of `name` from a 32-byte Ed25519 seed.
    pub fn new(name: &str, seed: &[u8; 32]) -> NoteSigner {
        let key = SigningKey::from_bytes(seed);
        let id = key_id(name, &key.verifying_key());
        NoteSigner {
            name: name.to_owned(),
            key,
            id,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key: `name+hex(key id)+base64(0x01 ‖ public key)`.
    pub fn vkey(&self) -> String {
        let mut typed = vec![ED25519];
        typed.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            crate::pseudonym::hex(&self.id),
            B64.encode(typed)
        )
    }

    /// The signed note of `text` (which ends in a newline).
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n') && !text.contains("\n\n"));
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        )
    }
}

/// A parsed verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    pub name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl Vkey {
    pub fn parse(text: &str) -> Result<Vkey, NoteError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey);
        };
        let id = crate::pseudonym::unhex(id).ok_or(NoteError::BadKey)?;
        let typed = B64.decode(key).map_err(|_| NoteError::BadKey)?;
        if !valid_name(name) || id.len() != 4 || typed.len() != 33 || typed[0] != ED25519 {
            return Err(NoteError::BadKey);
        }
        let bytes: [u8; 32] = typed[1..].try_into().expect("32 bytes");
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| NoteError::BadKey)?;
        let id: [u8; 4] = id.try_into().expect("4 bytes");
        if key_id(name, &key) != id {
            return Err(NoteError::BadKey);
        }
        Ok(Vkey {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The text of `note` when it carries a good signature by this key. A signature by
    /// this key that fails rejects the note, as C2SP asks; others are ignored.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        if note.chars().any(|c| c < ' ' && c != '\n') || !note.ends_with('\n') {
            return Err(NoteError::Malformed);
        }
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed)?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(SIGNATURE_PREFIX)
                .ok_or(NoteError::Malformed)?;
            let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed)?;
            let blob = B64.decode(blob).map_err(|_| NoteError::Malformed)?;
            if blob.len() < 4 {
                return Err(NoteError::Malformed);
            }
            if name != self.name || blob[..4] != self.id {
                continue;
            }
            let sig = Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            return self
                .key
                .verify_strict(text.as_bytes(), &sig)
                .map(|_| text)
                .map_err(|_| NoteError::BadSignature(self.name.clone()));
        }
        Err(NoteError::NotSigned(self.name.clone()))
    }
}

/// What a checkpoint states: the log, its size, its Merkle tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The C2SP `tlog-checkpoint` text: origin, size in decimal, base64 root, each on a
    /// line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Reads a checkpoint text (extension lines after the third are allowed and ignored).
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = text.lines();
        let origin = lines.next().filter(|o| !o.is_empty());
        // Decimal digits only, no leading zero.
        let canonical = |s: &&str| {
            s.bytes().all(|b| b.is_ascii_digit()) && !(s.len() > 1 && s.starts_with('0'))
        };
        let size = lines
            .next()
            .filter(canonical)
            .and_then(|s| s.parse::<u64>().ok());
        let root = lines.next().and_then(|r| B64.decode(r).ok());
        match (origin, size, root) {
            (Some(origin), Some(size), Some(root)) if root.len() == 32 => Ok(Checkpoint {
                origin: origin.to_owned(),
                size,
                root: root.try_into().expect("32 bytes"),
            }),
            _ => Err(NoteError::BadCheckpoint),
        }
    }
}

/// Base64 of a hash, as proofs carry them.
pub fn b64(h: &Hash) -> String {
    B64.encode(h)
}

/// A hash from base64 (None unless it is 32 bytes).
pub fn unb64(s: &str) -> Option<Hash> {
    B64.decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::new("example.com/audit", &[7u8; 32])
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let s = signer();
        let cp = Checkpoint {
            origin: s.name().into(),
            size: 42,
            root: [9u8; 32],
        };
        let note = s.sign(&cp.body());
        let vkey = Vkey::parse(&s.vkey()).unwrap();
        let text = vkey.open(&note).unwrap();
        assert_eq!(Checkpoint::parse(text).unwrap(), cp);

        let other = Vkey::parse(&NoteSigner::new("example.com/audit", &[8u8; 32]).vkey()).unwrap();
        assert!(matches!(other.open(&note), Err(NoteError::NotSigned(_))));

        let tampered = note.replacen("42", "43", 1);
        assert!(matches!(
            vkey.open(&tampered),
            Err(NoteError::BadSignature(_))
        ));
    }

    #[test]
    fn the_key_id_follows_c2sp() {
        // The example key of C2SP signed-note ("PeterNeumann"): its vkey's key id is the
        // hash C2SP defines, so a key our parser accepts is one other tools accept.
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let k = Vkey::parse(vkey).unwrap();
        assert_eq!(k.name, "PeterNeumann");
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        assert!(k.open(note).unwrap().starts_with("If you think"));
        // One changed character of the key no longer matches its id.
        assert_eq!(
            Vkey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX"),
            Err(NoteError::BadKey)
        );
    }

    #[test]
    fn malformed_notes_and_checkpoints_are_refused() {
        let vkey = Vkey::parse(&signer().vkey()).unwrap();
        for bad in [
            "",
            "text\n",
            "text\n\nno dash\n",
            "a\tb\n\n\u{2014} x AAAA\n",
        ] {
            assert!(vkey.open(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "o\n",
            "o\n01\nAAAA\n",
            "o\n+1\n",
            "o\n1\nnot-base64\n",
            "\n1\nAAAA\n",
        ] {
            assert_eq!(Checkpoint::parse(bad), Err(NoteError::BadCheckpoint));
        }
    }
}
