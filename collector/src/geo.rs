//! The country of an IP address from a MaxMind-format database file (GeoLite2 or
//! GeoIP2 Country or City, or any file with `country.iso_code`), when one is configured
//! (`GEOIP_DATABASE`). The address is looked up and forgotten: neither it nor the
//! country is stored.
use std::net::IpAddr;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The configured database, or none.
pub struct Geo(Option<maxminddb::Reader<Vec<u8>>>);

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Geo").field(&self.0.is_some()).finish()
    }
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
}

#[derive(Deserialize)]
struct Country<'a> {
    iso_code: Option<&'a str>,
}

impl Geo {
    /// Opens the database at `path` (read into memory once), or none.
    pub fn open(path: Option<&str>) -> Result<Geo> {
        match path {
            None => Ok(Geo(None)),
            Some(p) => maxminddb::Reader::open_readfile(p)
                .map(|r| Geo(Some(r)))
                .map_err(|e| Error::Config(format!("GEOIP_DATABASE {p}: {e}"))),
        }
    }

    /// The ISO 3166-1 alpha-2 country of `ip`, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let reader = self.0.as_ref()?;
        let record: Record<'_> = lookup(reader, ip)?;
        let code = record.country?.iso_code?;
        (code.len() == 2).then(|| code.to_ascii_uppercase())
    }
}

fn lookup<'a>(reader: &'a maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> Option<Record<'a>> {
    reader.lookup::<Record<'a>>(ip).ok().flatten()
}
