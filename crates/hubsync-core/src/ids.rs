//! Typed identifiers. HubSpot ids travel as strings in object JSON and as numbers in webhook
//! payloads; both forms parse into the same [`HubspotId`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An id that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} `{value}`: expected a positive integer")]
pub struct ParseIdError {
    kind: &'static str,
    value: String,
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $repr:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $repr);

        impl $name {
            /// The raw integer value.
            pub fn get(self) -> $repr {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim()
                    .parse::<$repr>()
                    .ok()
                    .filter(|v| *v > 0)
                    .map($name)
                    .ok_or_else(|| ParseIdError { kind: $kind, value: s.to_owned() })
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                $name(v)
            }
        }
    };
}

numeric_id!(
    /// A HubSpot account ("portal", "hub") id.
    PortalId, "portal id", u64
);
numeric_id!(
    /// A HubSpot app id; our own app id is how webhook echoes name us (`sourceId`).
    AppId, "app id", u64
);
numeric_id!(
    /// A HubSpot record id. Unique only within one object type of one portal.
    HubspotId, "HubSpot id", u64
);
numeric_id!(
    /// The primary key of a row in one of the app's tables.
    LocalId, "local id", i64
);

// PortalId, AppId and LocalId serialize as numbers; HubspotId as HubSpot writes it in object
// JSON (a string) but accepts both a string and a number.
macro_rules! serde_as_number {
    ($name:ident, $repr:ty) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_flexible::<D, $name>(d)
            }
        }
    };
}
serde_as_number!(PortalId, u64);
serde_as_number!(AppId, u64);
serde_as_number!(LocalId, i64);

impl Serialize for HubspotId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HubspotId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_flexible::<D, HubspotId>(d)
    }
}

/// Accepts `123` or `"123"`.
fn deserialize_flexible<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = ParseIdError>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Unsigned(u64),
        Signed(i64),
        Str(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Unsigned(n) => n.to_string(),
        Raw::Signed(n) => n.to_string(),
        Raw::Str(s) => s,
    };
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_id_reads_strings_and_numbers_and_writes_strings() {
        let a: HubspotId = serde_json::from_str("\"33451\"").unwrap();
        let b: HubspotId = serde_json::from_str("33451").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"33451\"");
    }

    #[test]
    fn ids_reject_garbage_and_zero() {
        assert!("abc".parse::<HubspotId>().is_err());
        assert!("0".parse::<PortalId>().is_err());
        assert!("-3".parse::<HubspotId>().is_err());
        assert!(serde_json::from_str::<HubspotId>("\"x1\"").is_err());
    }
}
