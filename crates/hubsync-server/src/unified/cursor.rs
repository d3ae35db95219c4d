//! Opaque page cursors. A cursor remembers where a listing stopped and which source it came
//! from: the last local id of a mirror page, or HubSpot's `after` of a remote page. Callers
//! must treat it as an opaque string; it is hex so that it survives any URL unescaped.

use hubsync_core::LocalId;

use super::error::ApiError;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// After this local id (mirror reads).
    Local(LocalId),
    /// HubSpot's `after` token (remote reads).
    Remote(String),
}

impl Cursor {
    /// The opaque text.
    pub fn encode(&self) -> String {
        let plain = match self {
            Cursor::Local(id) => format!("l1:{id}"),
            Cursor::Remote(after) => format!("r1:{after}"),
        };
        hex::encode(plain)
    }

    /// Reads a cursor from a previous page.
    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "bad_cursor",
                "the cursor is not one this api handed out; pass `next_cursor` unchanged",
            )
            .field("cursor")
        };
        let bytes = hex::decode(text).map_err(|_| bad())?;
        let plain = String::from_utf8(bytes).map_err(|_| bad())?;
        match plain.split_once(':') {
            Some(("l1", id)) => id.parse().map(Cursor::Local).map_err(|_| bad()),
            Some(("r1", after)) if !after.is_empty() && after.len() <= 512 => {
                Ok(Cursor::Remote(after.to_owned()))
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for c in [Cursor::Local(LocalId(42)), Cursor::Remote("200".into())] {
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
        for bad in ["", "zz", "6c313a", "6c313a2d31", &hex::encode("x1:5")] {
            assert_eq!(Cursor::decode(bad).unwrap_err().code, "bad_cursor", "{bad}");
        }
    }
}
