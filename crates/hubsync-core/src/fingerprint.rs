//! Content fingerprints: SHA-256 over the canonical form of the synced fields.
//!
//! The canonical form is the JSON of the [`FieldMap`]: keys sorted (a `BTreeMap`), no `null`s,
//! no whitespace. Server-computed fields (`lastmodifieddate`, `hs_object_id`, …) never enter a
//! `FieldMap` — the mappings only produce synced fields — so an echo of our own write hashes to
//! the fingerprint we recorded when we sent it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::record::FieldMap;

/// A SHA-256 fingerprint of a record's synced fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprints a field map.
    pub fn of(fields: &FieldMap) -> Fingerprint {
        let mut hasher = HashWriter(Sha256::new());
        // The canonical JSON streams straight into the hash, with no buffer in between.
        // Serializing a map of JSON values into a hasher cannot fail.
        let _ = serde_json::to_writer(&mut hasher, fields);
        Fingerprint(hasher.0.finalize().into())
    }

    /// Lowercase hex, as stored in the database.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form; `None` if it is not 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).ok()?;
        Some(Fingerprint(bytes))
    }
}

/// Feeds what is written to it into the hash.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprint_ignores_insertion_order_and_nulls() {
        let mut a = FieldMap::new();
        a.set("b", json!("2"));
        a.set("a", json!("1"));
        let mut b = FieldMap::new();
        b.set("a", json!("1"));
        b.set("b", json!("2"));
        b.set("c", serde_json::Value::Null);
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
        let hex = Fingerprint::of(&a).to_hex();
        assert_eq!(Fingerprint::from_hex(&hex), Some(Fingerprint::of(&a)));
    }

    #[test]
    fn fingerprint_changes_with_any_value() {
        let mut a = FieldMap::new();
        a.set("email_addresses", json!(["a@x.com"]));
        let mut b = a.clone();
        b.set("email_addresses", json!(["a@x.com", "b@x.com"]));
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&b));
    }
}
