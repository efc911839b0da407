//! ed25519 signatures as OSTree stores them (SPEC.md §8).
//!
//! * A public key is 32 bytes, written as one base64 line.
//! * A secret key is 64 bytes in libsodium's layout (seed ‖ public key),
//!   written as one base64 line; `ostree sign` reads exactly this.
//! * A commit is signed over the exact bytes of its `.commit` object; the
//!   signatures live in its detached metadata under `ostree.sign.ed25519`
//!   as `aay`. The summary is signed over the bytes of `summary`, and
//!   `summary.sig` is an `a{sv}` with the same key.
//!
//! Verification uses `verify_strict` (no small-order keys, canonical
//! signatures), which accepts every signature libsodium makes and refuses
//! what libsodium refuses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::metadata::{Metadata, Value};
use crate::{Error, commit::keys};

/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("line {line}: not base64")]
    Base64 {
        /// 1-based line.
        line: usize,
    },
    /// Wrong number of bytes.
    #[error("line {line}: key is {len} bytes, expected {expected}")]
    Length {
        /// 1-based line.
        line: usize,
        /// Decoded length.
        len: usize,
        /// Required length.
        expected: usize,
    },
    /// The public half of a secret key does not match its seed.
    #[error("secret key's public half does not match its seed")]
    Mismatch,
    /// Not a usable ed25519 public key (e.g. a small-order point).
    #[error("line {line}: not a valid ed25519 public key")]
    Invalid {
        /// 1-based line.
        line: usize,
    },
    /// No key in the text.
    #[error("no key found")]
    Empty,
}

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl PublicKey {
    /// From 32 raw bytes.
    pub fn from_bytes(b: &[u8; 32]) -> Option<PublicKey> {
        VerifyingKey::from_bytes(b).ok().map(PublicKey)
    }
    /// The raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    /// The base64 form used in key files.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }
    /// The hex form OSTree prints in errors.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }
    /// True if `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
        self.0.verify_strict(msg, &sig).is_ok()
    }
}

/// An ed25519 secret key.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// From a 32-byte seed (keygen supplies random bytes).
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }
    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(msg).to_bytes()
    }
    /// The base64 of seed ‖ public key, as `ostree sign` reads it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_keypair_bytes())
    }
}

fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn decode_line(line: usize, l: &str) -> Result<Vec<u8>, KeyError> {
    STANDARD.decode(l).map_err(|_| KeyError::Base64 { line })
}

/// Reads every public key in a key file (one base64 key per line; blank
/// lines and `#` comments are skipped).
pub fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let keys = key_lines(text)
        .map(|(line, l)| {
            let raw = decode_line(line, l)?;
            let b: [u8; 32] =
                raw.as_slice().try_into().map_err(|_| KeyError::Length { line, len: raw.len(), expected: 32 })?;
            PublicKey::from_bytes(&b).ok_or(KeyError::Invalid { line })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(keys)
}

/// Reads a secret key file: the first key line, 64 bytes (seed ‖ public)
/// as `ostree sign` uses, or a bare 32-byte seed.
pub fn parse_secret_key(text: &str) -> Result<SecretKey, KeyError> {
    let (line, l) = key_lines(text).next().ok_or(KeyError::Empty)?;
    let raw = decode_line(line, l)?;
    match raw.len() {
        64 => {
            let b: [u8; 64] = raw.as_slice().try_into().map_err(|_| KeyError::Mismatch)?;
            SigningKey::from_keypair_bytes(&b).map(SecretKey).map_err(|_| KeyError::Mismatch)
        }
        32 => {
            let b: [u8; 32] = raw.as_slice().try_into().map_err(|_| KeyError::Mismatch)?;
            Ok(SecretKey::from_seed(&b))
        }
        len => Err(KeyError::Length { line, len, expected: 64 }),
    }
}

/// The ed25519 signatures in a detached-metadata or `summary.sig`
/// dictionary; entries that are not 64 bytes are skipped (they cannot verify).
pub fn signatures(meta: &Metadata) -> Result<Vec<Vec<u8>>, Error> {
    Ok(meta
        .get_byte_arrays(keys::SIGN_ED25519)?
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.len() == SIGNATURE_LEN)
        .collect())
}

/// Adds `sig` to the dictionary's signature list (OSTree appends).
pub fn add_signature(meta: &mut Metadata, sig: &[u8; SIGNATURE_LEN]) -> Result<(), Error> {
    let mut all = meta.get_byte_arrays(keys::SIGN_ED25519)?.unwrap_or_default();
    if !all.iter().any(|s| s == sig) {
        all.push(sig.to_vec());
    }
    meta.insert(keys::SIGN_ED25519, Value::new_byte_arrays(&all));
    Ok(())
}

/// The outcome of checking signatures against trusted keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A trusted, unrevoked key made one of the signatures.
    Valid(PublicKey),
    /// Signatures exist; none is from a trusted key that is not revoked
    /// (`revoked` holds revoked keys that did match).
    Untrusted {
        /// Number of signatures checked.
        signatures: usize,
        /// Revoked keys whose signature was found.
        revoked: Vec<PublicKey>,
    },
    /// No signature at all.
    Unsigned,
}

/// Checks `msg` against every signature and every trusted key.
pub fn verify(msg: &[u8], sigs: &[Vec<u8>], trusted: &[PublicKey], revoked: &[PublicKey]) -> Verdict {
    if sigs.is_empty() {
        return Verdict::Unsigned;
    }
    let mut hit_revoked = Vec::new();
    for sig in sigs {
        for k in revoked {
            if k.verify(msg, sig) && !hit_revoked.contains(k) {
                hit_revoked.push(*k);
            }
        }
        for k in trusted {
            if !revoked.contains(k) && k.verify(msg, sig) {
                return Verdict::Valid(*k);
            }
        }
    }
    Verdict::Untrusted { signatures: sigs.len(), revoked: hit_revoked }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_verify() {
        let sk = SecretKey::from_seed(&[7; 32]);
        let pk = sk.public();
        let text = format!("# trusted\n{}\n\n", pk.to_base64());
        assert_eq!(parse_public_keys(&text), Ok(vec![pk]));
        let again = parse_secret_key(&sk.to_base64()).expect("own secret key parses");
        assert_eq!(again.public(), pk);
        let sig = sk.sign(b"msg");
        assert!(pk.verify(b"msg", &sig));
        assert!(!pk.verify(b"msh", &sig));
        let other = SecretKey::from_seed(&[8; 32]).public();
        let sigs = vec![sig.to_vec()];
        assert_eq!(verify(b"msg", &sigs, &[other, pk], &[]), Verdict::Valid(pk));
        assert_eq!(verify(b"msg", &sigs, &[other], &[]), Verdict::Untrusted { signatures: 1, revoked: vec![] });
        assert_eq!(verify(b"msg", &sigs, &[pk], &[pk]), Verdict::Untrusted { signatures: 1, revoked: vec![pk] });
        assert_eq!(verify(b"msg", &[], &[pk], &[]), Verdict::Unsigned);
    }

    #[test]
    fn bad_key_files() {
        assert_eq!(parse_public_keys(""), Err(KeyError::Empty));
        assert_eq!(parse_public_keys("not base64!"), Err(KeyError::Base64 { line: 1 }));
        assert!(matches!(parse_public_keys("AAAA"), Err(KeyError::Length { .. })));
        // A secret key whose public half was tampered with.
        let sk = SecretKey::from_seed(&[7; 32]);
        let mut raw = STANDARD.decode(sk.to_base64()).expect("base64");
        raw[40] ^= 1;
        assert_eq!(parse_secret_key(&STANDARD.encode(raw)).err(), Some(KeyError::Mismatch));
    }

    #[test]
    fn signatures_in_metadata() {
        let mut m = Metadata::new();
        add_signature(&mut m, &[1; 64]).expect("add");
        add_signature(&mut m, &[2; 64]).expect("add");
        add_signature(&mut m, &[1; 64]).expect("add again is a no-op");
        assert_eq!(signatures(&m), Ok(vec![vec![1; 64], vec![2; 64]]));
    }
}
