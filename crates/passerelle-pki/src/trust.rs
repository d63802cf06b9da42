//! The agencies a node trusts: for each, the CA that vouches for that agency id alone and
//! the Ed25519 public keys its record versions are signed with.
//!
//! A node always trusts its own CA; partners come from the trust file, a TOML document
//! with one `[[agency]]` table per partner:
//!
//! ```toml
//! [[agency]]
//! agency = "be.vdab"                 # the agency id this CA vouches for, and only it
//! ca_pem = """
//! -----BEGIN CERTIFICATE-----
//! ...
//! -----END CERTIFICATE-----
//! """
//!
//! [[agency.signing_keys]]            # zero or more; keep old keys during a rotation
//! id = "3f2a9c0b1d4e5f60"            # first 8 bytes of sha256(public_key), lowercase hex
//! public_key = "q83v...="            # the 32-byte Ed25519 public key, standard base64
//! ```
//!
//! `trust export` writes a file of this form holding one entry ([`TrustEntry::to_toml`]);
//! `trust add` reads it ([`TrustEntry::from_toml`]) and merges it into the node's trust file
//! ([`TrustFile::add`]). An entry may also name the node's own agency, to list more of its
//! own signing keys; its CA must then be the node's own CA.
//!
//! Rules checked on load: one entry per agency, `ca_pem` holds exactly one CA
//! certificate, no CA (same public key) is listed for two agencies, every key decodes to
//! 32 bytes and its id matches it. Unknown fields are ignored, so a file written by a
//! newer release still loads.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use base64::Engine as _;
use passerelle_model::AgencyId;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::identity::parse_cert;
use crate::issue::key_id_of;
use crate::PkiError;

/// The trust file as written on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustFile {
    #[serde(default)]
    pub agency: Vec<TrustEntry>,
}

/// One trusted agency, as exchanged between agencies and stored in the trust file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustEntry {
    pub agency: AgencyId,
    pub ca_pem: String,
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyEntry>,
}

/// A record-signing public key as written in the trust file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyEntry {
    pub id: String,
    /// Standard base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
}

impl SigningKeyEntry {
    pub fn new(public_key: &[u8; 32]) -> Self {
        SigningKeyEntry {
            id: key_id_of(public_key),
            public_key: base64::engine::general_purpose::STANDARD.encode(public_key),
        }
    }
}

/// A checked, parsed trust entry.
#[derive(Debug, Clone)]
pub struct TrustedAgency {
    agency: AgencyId,
    ca_der: CertificateDer<'static>,
    signing_keys: BTreeMap<String, [u8; 32]>,
}

impl TrustedAgency {
    pub fn agency(&self) -> &AgencyId {
        &self.agency
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// Key id to public key.
    pub fn signing_keys(&self) -> &BTreeMap<String, [u8; 32]> {
        &self.signing_keys
    }

    /// The raw DER subject-public-key-info: two CA certificates with the same key are the
    /// same authority, whatever their other fields say.
    fn ca_spki(&self) -> Vec<u8> {
        parse_cert(&self.ca_der)
            .map(|c| c.public_key().raw.to_vec())
            .unwrap_or_default()
    }
}

fn entry_err(agency: &AgencyId, reason: impl Into<String>) -> PkiError {
    PkiError::TrustEntry {
        agency: agency.to_string(),
        reason: reason.into(),
    }
}

/// Parses a PEM document that must hold exactly one CA certificate.
fn parse_ca_pem(agency: &AgencyId, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| entry_err(agency, format!("ca_pem is not valid pem: {e}")))?;
    let [der] = &certs[..] else {
        return Err(entry_err(
            agency,
            format!(
                "ca_pem must hold exactly one certificate, found {}",
                certs.len()
            ),
        ));
    };
    let cert = parse_cert(der).map_err(|e| entry_err(agency, format!("ca_pem: {e}")))?;
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| entry_err(agency, format!("ca_pem: {e}")))?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(entry_err(agency, "ca_pem is not a ca certificate"));
    }
    if !cert.validity().is_valid() {
        // handshakes will fail anyway; loading on keeps the other partners working
        tracing::warn!(agency = %agency, "trusted ca certificate is outside its validity period");
    }
    Ok(der.clone().into_owned())
}

impl TrustEntry {
    /// The entry an agency hands to its partners: its CA and record-signing public keys.
    pub fn new(
        agency: AgencyId,
        ca_pem: &str,
        public_keys: &[[u8; 32]],
    ) -> Result<TrustEntry, PkiError> {
        let entry = TrustEntry {
            agency,
            ca_pem: ca_pem.trim_end().to_owned() + "\n",
            signing_keys: public_keys.iter().map(SigningKeyEntry::new).collect(),
        };
        entry.validate()?;
        Ok(entry)
    }

    /// Checks and parses the entry.
    pub fn validate(&self) -> Result<TrustedAgency, PkiError> {
        let ca_der = parse_ca_pem(&self.agency, &self.ca_pem)?;
        let mut signing_keys = BTreeMap::new();
        for (i, k) in self.signing_keys.iter().enumerate() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(k.public_key.trim())
                .map_err(|e| {
                    entry_err(&self.agency, format!("signing_keys[{i}].public_key: {e}"))
                })?;
            let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                entry_err(
                    &self.agency,
                    format!(
                        "signing_keys[{i}].public_key must be 32 bytes, found {}",
                        b.len()
                    ),
                )
            })?;
            let expected = key_id_of(&key);
            if k.id != expected {
                return Err(entry_err(
                    &self.agency,
                    format!(
                        "signing_keys[{i}].id {:?} does not match its public key (expected {expected})",
                        k.id
                    ),
                ));
            }
            if signing_keys.insert(expected, key).is_some() {
                return Err(entry_err(
                    &self.agency,
                    format!("signing_keys[{i}] is listed twice"),
                ));
            }
        }
        Ok(TrustedAgency {
            agency: self.agency.clone(),
            ca_der,
            signing_keys,
        })
    }

    /// A trust file holding this entry alone: what `trust export` writes.
    pub fn to_toml(&self) -> String {
        TrustFile {
            agency: vec![self.clone()],
        }
        .to_toml()
    }

    /// Reads what [`TrustEntry::to_toml`] wrote; the document must hold exactly one entry.
    pub fn from_toml(s: &str) -> Result<TrustEntry, PkiError> {
        let file = TrustFile::parse(s, "trust entry")?;
        let n = file.agency.len();
        let mut entries = file.agency.into_iter();
        match (entries.next(), n) {
            (Some(e), 1) => Ok(e),
            _ => Err(PkiError::TrustFile {
                path: "trust entry".into(),
                reason: format!("must hold exactly one [[agency]], found {n}"),
            }),
        }
    }
}

impl TrustFile {
    /// Parses and checks a trust file; `name` (usually the path) goes into error messages.
    pub fn parse(s: &str, name: &str) -> Result<TrustFile, PkiError> {
        let file: TrustFile = toml::from_str(s).map_err(|e| PkiError::TrustFile {
            path: name.to_owned(),
            reason: e.message().to_owned(),
        })?;
        file.check().map_err(|e| PkiError::TrustFile {
            path: name.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<TrustFile, PkiError> {
        let s = fs::read_to_string(path).map_err(|source| PkiError::Io {
            path: path.display().to_string(),
            source,
        })?;
        TrustFile::parse(&s, &path.display().to_string())
    }

    /// Like [`TrustFile::load`], but a missing file is an empty one: `trust add` creates it.
    pub fn load_or_default(path: &Path) -> Result<TrustFile, PkiError> {
        if path.exists() {
            TrustFile::load(path)
        } else {
            Ok(TrustFile::default())
        }
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# passerelle trust file: partner agencies, their CAs and record-signing keys\n{body}"
        )
    }

    /// Writes through a temporary file and a rename, so a node reloading on SIGHUP never
    /// reads a half-written file.
    pub fn save(&self, path: &Path) -> Result<(), PkiError> {
        let io = |source| PkiError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        fs::write(&tmp, self.to_toml()).map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }

    /// Adds a partner entry. A second entry for an agency already present is refused
    /// unless `replace` is set (a CA or key rotation); returns whether one was replaced.
    pub fn add(&mut self, entry: TrustEntry, replace: bool) -> Result<bool, PkiError> {
        entry.validate()?;
        let existing = self.agency.iter().position(|e| e.agency == entry.agency);
        if existing.is_some() && !replace {
            return Err(entry_err(
                &entry.agency,
                "is already in the trust file; replace it explicitly",
            ));
        }
        let mut next = self.clone();
        match existing {
            Some(i) => next.agency[i] = entry,
            None => next.agency.push(entry),
        }
        next.check()?;
        *self = next;
        Ok(existing.is_some())
    }

    /// Removes an agency's entry; returns whether there was one.
    pub fn remove(&mut self, agency: &AgencyId) -> bool {
        let before = self.agency.len();
        self.agency.retain(|e| &e.agency != agency);
        self.agency.len() != before
    }

    fn check(&self) -> Result<Vec<TrustedAgency>, PkiError> {
        let mut out: Vec<TrustedAgency> = Vec::with_capacity(self.agency.len());
        for e in &self.agency {
            if out.iter().any(|t| t.agency == e.agency) {
                return Err(entry_err(&e.agency, "is listed twice"));
            }
            out.push(e.validate()?);
        }
        check_distinct_cas(&out)?;
        Ok(out)
    }
}

fn check_distinct_cas(agencies: &[TrustedAgency]) -> Result<(), PkiError> {
    for (i, a) in agencies.iter().enumerate() {
        let spki = a.ca_spki();
        if let Some(b) = agencies[..i].iter().find(|b| b.ca_spki() == spki) {
            return Err(entry_err(
                &a.agency,
                format!(
                    "has the same ca as {}; a ca vouches for one agency only",
                    b.agency
                ),
            ));
        }
    }
    Ok(())
}

/// The agencies a node trusts, its own included.
#[derive(Debug, Clone)]
pub struct TrustStore {
    own: AgencyId,
    agencies: BTreeMap<AgencyId, TrustedAgency>,
}

impl TrustStore {
    /// The node's own CA plus the partners of `trust_file`; a configured file that does
    /// not exist is an error (a typo in the path must not silently drop every partner).
    pub fn load(
        own_agency: &AgencyId,
        own_ca_pem: &str,
        trust_file: Option<&Path>,
    ) -> Result<TrustStore, PkiError> {
        let file = match trust_file {
            Some(p) => TrustFile::load(p)?,
            None => TrustFile::default(),
        };
        TrustStore::from_file(own_agency, own_ca_pem, &file)
    }

    /// As [`TrustStore::load`], from an already parsed trust file.
    pub fn from_file(
        own_agency: &AgencyId,
        own_ca_pem: &str,
        file: &TrustFile,
    ) -> Result<TrustStore, PkiError> {
        let own_der = parse_ca_pem(own_agency, own_ca_pem).map_err(|e| PkiError::Pem {
            what: "own ca certificate".into(),
            reason: e.to_string(),
        })?;
        let mut own = TrustedAgency {
            agency: own_agency.clone(),
            ca_der: own_der,
            signing_keys: BTreeMap::new(),
        };
        let mut agencies = BTreeMap::new();
        for t in file.check()? {
            if &t.agency == own_agency {
                if t.ca_der != own.ca_der {
                    return Err(entry_err(
                        own_agency,
                        "is this node's own agency but names a different ca",
                    ));
                }
                own.signing_keys.extend(t.signing_keys);
            } else {
                agencies.insert(t.agency.clone(), t);
            }
        }
        agencies.insert(own_agency.clone(), own);
        let all: Vec<TrustedAgency> = agencies.values().cloned().collect();
        check_distinct_cas(&all)?;
        Ok(TrustStore {
            own: own_agency.clone(),
            agencies,
        })
    }

    /// Adds the node's own record-signing key, which the trust file need not list.
    pub fn with_own_signing_key(mut self, public_key: [u8; 32]) -> TrustStore {
        if let Some(own) = self.agencies.get_mut(&self.own) {
            own.signing_keys.insert(key_id_of(&public_key), public_key);
        }
        self
    }

    pub fn own_agency(&self) -> &AgencyId {
        &self.own
    }

    pub fn ca_for(&self, agency: &AgencyId) -> Option<&CertificateDer<'static>> {
        self.agencies.get(agency).map(|t| &t.ca_der)
    }

    pub fn get(&self, agency: &AgencyId) -> Option<&TrustedAgency> {
        self.agencies.get(agency)
    }

    pub fn signing_key(&self, agency: &AgencyId, key_id: &str) -> Option<[u8; 32]> {
        self.agencies.get(agency)?.signing_keys.get(key_id).copied()
    }

    /// Every trusted agency id, own included, in order.
    pub fn agencies(&self) -> impl Iterator<Item = &AgencyId> + '_ {
        self.agencies.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = &TrustedAgency> + '_ {
        self.agencies.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::{new_agency_ca, SigningKey};

    fn id(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    fn key() -> [u8; 32] {
        SigningKey::from_pkcs8(&SigningKey::generate().unwrap())
            .unwrap()
            .public_key()
    }

    #[test]
    fn export_add_load_round_trip() {
        let anpe = new_agency_ca(&id("tg.anpe"), 30).unwrap();
        let vdab = new_agency_ca(&id("be.vdab"), 30).unwrap();
        let (k1, k2) = (key(), key());
        let exported = TrustEntry::new(id("be.vdab"), &vdab.cert_pem, &[k1, k2])
            .unwrap()
            .to_toml();
        // the certificate stays readable PEM, as in the documented format
        assert!(
            exported.contains("ca_pem = \"\"\"\n-----BEGIN CERTIFICATE-----"),
            "{exported}"
        );
        assert!(exported.contains("[[agency]]"), "{exported}");
        assert!(exported.contains("[[agency.signing_keys]]"), "{exported}");
        let entry = TrustEntry::from_toml(&exported).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.toml");
        let mut file = TrustFile::load_or_default(&path).unwrap();
        assert!(!file.add(entry.clone(), false).unwrap());
        file.save(&path).unwrap();

        let store = TrustStore::load(&id("tg.anpe"), &anpe.cert_pem, Some(&path)).unwrap();
        let ids: Vec<&str> = store.agencies().map(|a| a.as_str()).collect();
        assert_eq!(ids, ["be.vdab", "tg.anpe"]);
        assert_eq!(store.signing_key(&id("be.vdab"), &key_id_of(&k2)), Some(k2));
        assert_eq!(store.signing_key(&id("be.vdab"), &key_id_of(&key())), None);
        assert_eq!(store.signing_key(&id("tg.anpe"), &key_id_of(&k1)), None);
        let vdab_der = crate::issue::first_cert_der(&vdab.cert_pem, "t").unwrap();
        assert_eq!(
            store.ca_for(&id("be.vdab")).unwrap().as_ref(),
            &vdab_der[..]
        );
        assert!(store.ca_for(&id("fr.ft")).is_none());

        let own = key();
        let store = store.with_own_signing_key(own);
        assert_eq!(
            store.signing_key(&id("tg.anpe"), &key_id_of(&own)),
            Some(own)
        );
    }

    #[test]
    fn add_refuses_a_second_entry_unless_replacing() {
        let vdab = new_agency_ca(&id("be.vdab"), 30).unwrap();
        let vdab2 = new_agency_ca(&id("be.vdab"), 30).unwrap();
        let mut file = TrustFile::default();
        file.add(
            TrustEntry::new(id("be.vdab"), &vdab.cert_pem, &[]).unwrap(),
            false,
        )
        .unwrap();
        let again = TrustEntry::new(id("be.vdab"), &vdab2.cert_pem, &[key()]).unwrap();
        let err = file.add(again.clone(), false).unwrap_err();
        assert!(err.to_string().contains("already"), "{err}");
        assert_eq!(file.agency[0].ca_pem, vdab.cert_pem);
        assert!(file.add(again.clone(), true).unwrap());
        assert_eq!(file.agency, vec![again]);
        assert!(file.remove(&id("be.vdab")));
        assert!(!file.remove(&id("be.vdab")));
    }

    #[test]
    fn one_ca_cannot_vouch_for_two_agencies() {
        let ca = new_agency_ca(&id("be.vdab"), 30).unwrap();
        let mut file = TrustFile::default();
        file.add(
            TrustEntry::new(id("be.vdab"), &ca.cert_pem, &[]).unwrap(),
            false,
        )
        .unwrap();
        let err = file
            .add(
                TrustEntry::new(id("be.forem"), &ca.cert_pem, &[]).unwrap(),
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("same ca"), "{err}");
        assert_eq!(file.agency.len(), 1);
        // nor may a partner entry reuse the node's own ca
        let err = TrustStore::from_file(&id("tg.anpe"), &ca.cert_pem, &file).unwrap_err();
        assert!(err.to_string().contains("same ca"), "{err}");
    }

    #[test]
    fn bad_entries_are_refused() {
        let ca = new_agency_ca(&id("be.vdab"), 30).unwrap();
        let good = TrustEntry::new(id("be.vdab"), &ca.cert_pem, &[key()]).unwrap();

        let mut e = good.clone();
        e.signing_keys[0].id = "0000000000000000".into();
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("does not match"));

        let mut e = good.clone();
        e.signing_keys[0].public_key = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        assert!(e.validate().unwrap_err().to_string().contains("32 bytes"));

        let mut e = good.clone();
        e.signing_keys.push(e.signing_keys[0].clone());
        assert!(e.validate().unwrap_err().to_string().contains("twice"));

        let mut e = good.clone();
        e.ca_pem = format!("{}{}", ca.cert_pem, ca.cert_pem);
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("exactly one"));

        let leaf = crate::issue::issue_cert(
            &ca,
            &crate::CertRequest::new(
                crate::Identity::new(id("be.vdab"), crate::Role::Node, "n").unwrap(),
                1,
            ),
        )
        .unwrap();
        let mut e = good.clone();
        e.ca_pem = leaf.cert_pem;
        assert!(e.validate().unwrap_err().to_string().contains("not a ca"));

        let twice = format!("{}\n{}", good.to_toml(), good.to_toml());
        let err = TrustFile::parse(&twice, "trust.toml").unwrap_err();
        assert!(err.to_string().contains("trust.toml"), "{err}");
        assert!(err.to_string().contains("listed twice"), "{err}");

        let err = TrustFile::parse(
            "[[agency]]\nagency = \"BE.vdab\"\nca_pem = \"\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("agency id"), "{err}");
        assert!(TrustEntry::from_toml("").is_err());
    }

    #[test]
    fn own_entry_must_name_own_ca() {
        let anpe = new_agency_ca(&id("tg.anpe"), 30).unwrap();
        let impostor = new_agency_ca(&id("tg.anpe"), 30).unwrap();
        let k = key();
        let mut file = TrustFile::default();
        file.add(
            TrustEntry::new(id("tg.anpe"), &anpe.cert_pem, &[k]).unwrap(),
            false,
        )
        .unwrap();
        let store = TrustStore::from_file(&id("tg.anpe"), &anpe.cert_pem, &file).unwrap();
        assert_eq!(store.signing_key(&id("tg.anpe"), &key_id_of(&k)), Some(k));
        let err = TrustStore::from_file(&id("tg.anpe"), &impostor.cert_pem, &file).unwrap_err();
        assert!(err.to_string().contains("different ca"), "{err}");
    }

    #[test]
    fn missing_configured_file_is_an_error() {
        let anpe = new_agency_ca(&id("tg.anpe"), 30).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = TrustStore::load(&id("tg.anpe"), &anpe.cert_pem, Some(&path)).unwrap_err();
        assert!(err.to_string().contains("nope.toml"), "{err}");
        let store = TrustStore::load(&id("tg.anpe"), &anpe.cert_pem, None).unwrap();
        assert_eq!(store.agencies().count(), 1);
    }
}
