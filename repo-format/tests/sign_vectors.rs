//! Signatures made by the real (ed25519-capable) `ostree`: we verify them,
//! and signing the same bytes with the same key gives the same bytes.
//! Regenerate with `tests/vectors/make-sign-vectors.sh`.

use std::path::PathBuf;

use repo_format::sign::{self, Verdict, parse_public_keys, parse_secret_key};
use repo_format::{Checksum, Commit, Metadata, Summary};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn vector(name: &str) -> Result<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sign").join(name);
    Ok(std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
}

fn text(name: &str) -> Result<String> {
    Ok(String::from_utf8(vector(name)?)?)
}

#[test]
fn keys_parse_and_match() -> Result {
    let public = parse_public_keys(&text("key.pub")?)?;
    let secret = parse_secret_key(&text("key.sec")?)?;
    assert_eq!(public, vec![secret.public()]);
    // Our encoding of the secret key is ostree's, byte for byte.
    assert_eq!(format!("{}\n", secret.to_base64()), text("key.sec")?);
    Ok(())
}

#[test]
fn commit_signature_from_ostree() -> Result {
    let commit = vector("commit")?;
    let id = Checksum::from_hex(text("commit.id")?.trim())?;
    assert_eq!(Checksum::of(&commit), id);
    Commit::from_bytes(&commit)?;
    let detached = Metadata::from_bytes(&vector("commitmeta")?)?;
    let sigs = sign::signatures(&detached)?;
    let public = parse_public_keys(&text("key.pub")?)?;
    assert_eq!(sign::verify(&commit, &sigs, &public, &[]), Verdict::Valid(public[0]));
    // Another key does not verify; a revoked key never does.
    let other = parse_secret_key("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")?.public();
    assert!(matches!(sign::verify(&commit, &sigs, &[other], &[]), Verdict::Untrusted { .. }));
    assert!(matches!(sign::verify(&commit, &sigs, &public, &public), Verdict::Untrusted { .. }));
    // One flipped byte of the commit breaks it.
    let mut bad = commit.clone();
    bad[10] ^= 1;
    assert!(matches!(sign::verify(&bad, &sigs, &public, &[]), Verdict::Untrusted { .. }));
    // Signing with the same key gives ostree's exact detached metadata.
    let secret = parse_secret_key(&text("key.sec")?)?;
    let mut ours = Metadata::new();
    sign::add_signature(&mut ours, &secret.sign(&commit))?;
    assert_eq!(ours.to_bytes(), vector("commitmeta")?);
    Ok(())
}

#[test]
fn summary_signature_from_ostree() -> Result {
    let summary = vector("summary")?;
    let parsed = Summary::from_bytes(&summary)?;
    assert_eq!(parsed.refs().len(), 1);
    assert_eq!(parsed.refs()[0].name, "os/x86_64/stable");
    assert_eq!(parsed.refs()[0].checksum, Checksum::from_hex(text("commit.id")?.trim())?);
    let sig = Metadata::from_bytes(&vector("summary.sig")?)?;
    let public = parse_public_keys(&text("key.pub")?)?;
    assert_eq!(sign::verify(&summary, &sign::signatures(&sig)?, &public, &[]), Verdict::Valid(public[0]));
    let secret = parse_secret_key(&text("key.sec")?)?;
    let mut ours = Metadata::new();
    sign::add_signature(&mut ours, &secret.sign(&summary))?;
    assert_eq!(ours.to_bytes(), vector("summary.sig")?);
    // Re-encoding ostree's summary gives its bytes back.
    assert_eq!(parsed.to_bytes(), summary);
    Ok(())
}
