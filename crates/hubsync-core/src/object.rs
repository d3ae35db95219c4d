//! The CRM object types hubsync syncs, and every name HubSpot uses for each.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A synced CRM object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// Contacts (`0-1`).
    Contacts,
    /// Companies (`0-2`).
    Companies,
    /// Deals (`0-3`).
    Deals,
}

/// A name that is not one of the synced object types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown object type `{0}`: expected contacts, companies or deals")]
pub struct UnknownObjectType(pub String);

impl ObjectType {
    /// Every synced type, in dependency order (companies before the contacts and deals that
    /// point at them).
    pub const ALL: [ObjectType; 3] = [
        ObjectType::Companies,
        ObjectType::Contacts,
        ObjectType::Deals,
    ];

    /// The plural name used in API paths and in hubsync's table names (`contacts`).
    pub fn plural(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
        }
    }

    /// The singular name used in webhook subscription types (`contact.creation`).
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
            ObjectType::Deals => "deal",
        }
    }

    /// HubSpot's object type id (`0-1`).
    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
        }
    }

    /// The property holding the last-modified time. Contacts use `lastmodifieddate`; a search
    /// on `hs_lastmodifieddate` for contacts silently returns nothing.
    pub fn last_modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            ObjectType::Companies | ObjectType::Deals => "hs_lastmodifieddate",
        }
    }

    /// The upper-case name HubSpot uses in messages ("Could not get some CONTACT objects").
    pub fn upper(self) -> &'static str {
        match self {
            ObjectType::Contacts => "CONTACT",
            ObjectType::Companies => "COMPANY",
            ObjectType::Deals => "DEAL",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

impl FromStr for ObjectType {
    type Err = UnknownObjectType;

    /// Accepts every name HubSpot accepts in a path: plural, singular or type id.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Ok(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Ok(ObjectType::Companies),
            "deals" | "deal" | "0-3" => Ok(ObjectType::Deals),
            _ => Err(UnknownObjectType(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hubspot_name_parses() {
        for t in ObjectType::ALL {
            assert_eq!(t.plural().parse::<ObjectType>().unwrap(), t);
            assert_eq!(t.singular().parse::<ObjectType>().unwrap(), t);
            assert_eq!(t.type_id().parse::<ObjectType>().unwrap(), t);
        }
        assert!("tickets".parse::<ObjectType>().is_err());
    }
}
